wc -l < "$ALAMODE_INPUT_EXTRACT/rows.csv" > "$ALAMODE_OUTPUT/count"
echo "$1" >> "$ALAMODE_OUTPUT/count"
