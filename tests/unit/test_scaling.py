"""The makespan model of docs/performance.md (benchmarks/scaling.py): list scheduling, longest first,
with a per-task overhead, and the lower bound that limits it."""

from benchmarks.scaling import list_schedule, table


def test_list_schedule_hands_jobs_to_the_first_free_worker():
    assert list_schedule([3.0, 2.0, 2.0, 1.0], 2)["makespan"] == 4.0  # 3+1 | 2+2
    assert list_schedule([1.0, 2.0, 2.0, 3.0], 2)["makespan"] == 5.0  # in the order given: 1+2+... | 2+3
    assert list_schedule([3.0, 1.0], 8) == {"makespan": 3.0, "lower_bound": 3.0, "limit": "longest run"}
    assert list_schedule([], 2)["makespan"] == 0.0


def test_table_orders_by_estimated_cost_and_adds_the_overhead():
    runs = [(1.0, 1.0), (3.0, 3.0), (2.0, 2.0), (2.0, 2.0)]  # (estimated cost, seconds)
    rows = {r["workers"]: r for r in table(runs, 0.0, counts=(1, 2, 8))}
    assert [rows[n]["makespan"] for n in (1, 2, 8)] == [
        8.0,
        4.0,
        3.0,
    ]  # 8 workers: the longest run is the path
    assert table(runs, 0.5, counts=(2,))[0]["makespan"] == 5.0  # every task pays the overhead
    # ordered by the estimate, not by the measured seconds: a run estimated short but long comes last
    assert table([(1.0, 4.0), (2.0, 1.0), (3.0, 1.0)], 0.0, counts=(2,))[0]["makespan"] == 5.0


def test_table_names_what_limits_it():
    runs = [(10.0, 10.0)] + [(1.0, 1.0)] * 12
    rows = {r["workers"]: r for r in table(runs, 0.0, counts=(1, 2, 4))}
    assert rows[1]["efficiency"] == 1.0 and rows[2]["limit"] == "total work"
    assert rows[4]["limit"] == "longest run" and rows[4]["makespan"] == 10.0
