"""The makespan model of docs/performance.md: list scheduling, longest first, with a per-task overhead."""
from siamese_lib.pipeline.scaling import makespan, table


def test_makespan_is_list_scheduling_longest_first():
    runs = [(3.0, 3.0), (1.0, 1.0), (2.0, 2.0), (2.0, 2.0)]   # (estimated cost, seconds)
    assert makespan(runs, 1, 0.0) == 8.0
    assert makespan(runs, 2, 0.0) == 4.0                       # 3+1 | 2+2
    assert makespan(runs, 8, 0.0) == 3.0                       # the longest run: the critical path
    assert makespan(runs, 2, 0.5) == 5.0                       # every task pays the overhead


def test_table_names_what_limits_it():
    runs = [(10.0, 10.0)] + [(1.0, 1.0)] * 12
    rows = {r["workers"]: r for r in table(runs, 0.0, counts=(1, 2, 4))}
    assert rows[1]["efficiency"] == 1.0 and rows[2]["limit"] == "total work"
    assert rows[4]["limit"] == "longest run" and rows[4]["makespan"] == 10.0
