def test_a_count_has_its_noun_in_the_right_number():
    from alignscope.dashboard.selection import counted

    assert [counted(n, "sample") for n in (0, 1, 2, 1797)] == ["0 samples", "1 sample", "2 samples", "1,797 samples"]
    assert counted(1, "known metric") == "1 known metric"  # "needs at least 1 known metrics" before
