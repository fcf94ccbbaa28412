"""The fault suite's parts (`python -m bench.faults`): the venues, baskets and engine of a
trial (`world`), a run held against the journal and the venues (`audit`), the trials
(`trials`), and a throwaway PostgreSQL (`postgres`)."""
