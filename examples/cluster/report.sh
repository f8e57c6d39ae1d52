# The report task: its script is listed in the spec's files, so editing it reruns it.
sed -n 's/^ *"\(.*\)": \([0-9]*\),*$/\2 \1/p' "$ALAMODE_INPUT_COUNT/counts.json" > "$ALAMODE_OUTPUT/report.txt"
