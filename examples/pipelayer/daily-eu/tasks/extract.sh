region="$1"; rows="$2"
seq 1 "$rows" | sed "s/^/$region,/" > "$ALAMODE_OUTPUT/rows.csv"
