"""The engine contract as tests: what every engine must do with a ``Job``, in either form of
the contract in a_la_mode/run/engine.py: blocking (``run(job) -> Result``, API 1) or submit
and poll (``submit(job)``, ``poll(timeout)``, API 2).

An engine plugin's test module subclasses ``EngineContract`` and gives ``make_engine`` (and,
for an engine that runs commands in an image, ``spec``)::

    class TestMyEngine(EngineContract):
        def make_engine(self) -> Engine:
            return MyEngine()
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from a_la_mode.run.engine import Engine, Job, Result, api_version


class EngineContract:
    """Subclass it and define ``make_engine``: every ``test_`` method runs on your engine."""

    def make_engine(self) -> Engine:
        raise NotImplementedError("define make_engine() in your subclass")

    def spec(self) -> Mapping[str, Any]:
        """Spec keys every job needs on this engine (an image, say)."""
        return {}

    @pytest.fixture
    def engine(self) -> Any:
        engine = self.make_engine()
        engine.check()
        yield engine
        getattr(engine, "close", lambda: None)()

    def job(self, tmp_path: Path, command: str, **fields: Any) -> Job:
        output = tmp_path / "staging"
        output.mkdir(exist_ok=True)
        return Job(
            task=fields.pop("task", "t"),
            output_id="ab" * 32,
            command=command,
            env=fields.pop("env", {}),
            output_dir=str(output),
            inputs=fields.pop("inputs", {}),
            log_path=str(tmp_path / "logs" / "1.log"),
            spec=self.spec(),
            **fields,
        )

    def run(self, engine: Any, job: Job) -> Result:
        """The job run to its end, in the form the engine speaks."""
        engine.prepare({job.task: {**self.spec(), "command": job.command}})
        if api_version(engine) == 1:
            result: Result = engine.run(job)
            return result
        handle = engine.submit(job)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for ended, result in engine.poll(1.0):
                assert ended == handle, f"poll reported {ended!r}, never submitted"
                return result
        raise AssertionError(f"the job was not reported ended within 120 s ({engine.name})")

    def test_a_command_writes_its_output_and_its_log(self, engine: Any, tmp_path: Path) -> None:
        job = self.job(tmp_path, 'echo hello > "$ALAMODE_OUTPUT/f"; echo to-the-log')
        result = self.run(engine, job)
        assert result.ok and result.exit_code == 0, result
        assert (Path(job.output_dir) / "f").read_text() == "hello\n"
        assert Path(job.log_path).read_text() == "to-the-log\n"

    def test_a_silent_command_leaves_no_log(self, engine: Any, tmp_path: Path) -> None:
        job = self.job(tmp_path, "true")
        assert self.run(engine, job).ok
        assert not Path(job.log_path).exists()

    def test_a_failing_command_is_a_result_not_an_error(self, engine: Any, tmp_path: Path) -> None:
        result = self.run(engine, self.job(tmp_path, "echo broken >&2; exit 3"))
        assert not result.ok and result.exit_code == 3
        assert result.describe().startswith("exited with status 3")

    def test_the_variables_a_command_sees(self, engine: Any, tmp_path: Path) -> None:
        upstream = tmp_path / "upstream"
        upstream.mkdir()
        (upstream / "u").write_text("from upstream\n")
        job = self.job(
            tmp_path,
            'cat "$ALAMODE_INPUT_UP_STREAM/u" > "$ALAMODE_OUTPUT/copy"; '
            'echo "$ALAMODE_TASK $ALAMODE_OUTPUT_ID $GREETING" > "$ALAMODE_OUTPUT/vars"; '
            'echo "$ALAMODE_INPUTS" > "$ALAMODE_OUTPUT/inputs"',
            task="named",
            env={"GREETING": "hi"},
            inputs={"up-stream": str(upstream)},
        )
        assert self.run(engine, job).ok
        out = Path(job.output_dir)
        assert (out / "copy").read_text() == "from upstream\n"
        assert (out / "vars").read_text() == f"named {'ab' * 32} hi\n"
        inputs = json.loads((out / "inputs").read_text())
        assert list(inputs) == ["up-stream"] and inputs["up-stream"].startswith("/")

    def test_a_timeout_ends_the_command(self, engine: Any, tmp_path: Path) -> None:
        started = time.monotonic()
        result = self.run(engine, self.job(tmp_path, "sleep 30", timeout=1))
        assert result.timed_out and not result.ok
        assert time.monotonic() - started < 20

    def test_stop_all_ends_what_runs(self, engine: Any, tmp_path: Path) -> None:
        job = self.job(tmp_path, 'echo started; touch "$ALAMODE_OUTPUT/started"; sleep 30')
        log, mark = Path(job.log_path), Path(job.output_dir) / "started"
        results: list[Result] = []
        worker = threading.Thread(target=lambda: results.append(self.run(engine, job)))
        worker.start()
        deadline = time.monotonic() + 60
        # Stop what runs: once the command has begun, as its log or its output shows (one
        # of them can be seen from here while it runs, wherever the engine runs it).
        while not (mark.exists() or (log.exists() and b"started" in log.read_bytes())):
            assert time.monotonic() < deadline and worker.is_alive(), "it never started"
            time.sleep(0.02)
        began = time.monotonic()
        engine.stop_all()
        worker.join(timeout=20)
        assert not worker.is_alive() and results and not results[0].ok
        assert time.monotonic() - began < 20  # ended, not waited out
