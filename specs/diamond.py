"""A diamond, as in datamake's example: one download feeds two branches, a join point ends it.

``user-details`` has no command: it only joins its inputs. The same pipeline is written
declaratively in diamond.yaml and diamond.toml; all three compile to the same plan.
"""

from a_la_mode import Dag, Task

with Dag({"owner": "data-team"}) as dag:
    users = Task("fetch-users", {"command": 'seq 1 100 > "$ALAMODE_OUTPUT/users.txt"'})
    profiles = Task(
        "user-profiles",
        {
            "command": "sed 's/^/profile-/' \"$ALAMODE_INPUT_FETCH_USERS/users.txt\" "
            '> "$ALAMODE_OUTPUT/profiles.txt"'
        },
    )
    orders = Task(
        "user-orders",
        {
            "command": "awk '{print $1, $1 * 3}' \"$ALAMODE_INPUT_FETCH_USERS/users.txt\" "
            '> "$ALAMODE_OUTPUT/orders.txt"',
            "env": {"LC_ALL": "C"},
        },
    )
    details = Task("user-details", {})

    users >> [profiles, orders] >> details
