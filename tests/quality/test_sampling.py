"""ISO 2859-1:1999 Table 1 (code letters) and Table 2-A (single sampling, normal inspection).

Reference cells are read from the standard's tables (identical to ANSI/ASQ Z1.4 Tables I
and II-A); arrows resolve to the first plan below/above, with that plan's sample size.
"""
import pandas as pd
import pytest

from labkit.quality.sampling import (
    AQLS,
    CODE_LETTERS,
    SAMPLE_SIZES,
    code_letter,
    draw_sample,
    plan_table,
    proportion_interval,
    sampling_plan,
)

# (lot size, level, letter) from Table 1, including range boundaries
TABLE_1 = [
    (2, "II", "A"), (8, "II", "A"), (9, "II", "B"), (15, "II", "B"), (16, "II", "C"), (25, "II", "C"),
    (26, "II", "D"), (50, "II", "D"), (51, "II", "E"), (90, "II", "E"), (91, "II", "F"), (150, "II", "F"),
    (151, "II", "G"), (280, "II", "G"), (281, "II", "H"), (500, "II", "H"), (501, "II", "J"),
    (1000, "II", "J"), (1200, "II", "J"), (1201, "II", "K"), (3200, "II", "K"), (3201, "II", "L"),
    (10000, "II", "L"), (10001, "II", "M"), (35000, "II", "M"), (35001, "II", "N"), (150000, "II", "N"),
    (150001, "II", "P"), (500000, "II", "P"), (500001, "II", "Q"), (10**7, "II", "Q"),
    (1000, "I", "G"), (1000, "III", "K"), (50, "I", "C"), (50, "III", "E"), (10**6, "III", "R"),
    (10**6, "I", "N"), (1000, "S-1", "C"), (1000, "S-2", "C"), (1000, "S-3", "E"), (1000, "S-4", "F"),
    (10**6, "S-4", "K"), (100, "S-3", "C"),
]


@pytest.mark.parametrize("lot,level,letter", TABLE_1)
def test_code_letters_table_1(lot, level, letter):
    assert code_letter(lot, level) == letter


def test_sample_sizes():
    assert [SAMPLE_SIZES[k] for k in CODE_LETTERS] == [2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800,
                                                        1250, 2000]


# (lot size, AQL, plan letter, n, Ac, Re): direct cells and cells behind arrows
PLANS = [
    (1000, 1.0, "J", 80, 2, 3),      # J, AQL 1.0: 2/3
    (500, 2.5, "H", 50, 3, 4),       # H, AQL 2.5: 3/4
    (50, 1.0, "E", 13, 0, 1),        # D, AQL 1.0: ↓ -> E (n=13) 0/1
    (1000, 2.5, "J", 80, 5, 6),
    (1000, 4.0, "J", 80, 7, 8),
    (1000, 0.65, "J", 80, 1, 2),
    (1000, 0.25, "H", 50, 0, 1),     # J, AQL 0.25: ↑ -> H 0/1
    (1000, 0.40, "K", 125, 1, 2),    # J, AQL 0.40: ↓ -> K 1/2
    (2000, 0.65, "K", 125, 2, 3),
    (2000, 1.5, "K", 125, 5, 6),
    (2000, 2.5, "K", 125, 7, 8),
    (2000, 4.0, "K", 125, 10, 11),
    (5000, 6.5, "L", 200, 21, 22),
    (20000, 4.0, "M", 315, 21, 22),
    (50000, 4.0, "M", 315, 21, 22),  # N, AQL 4.0: ↑ -> M 21/22
    (50000, 0.10, "N", 500, 1, 2),
    (50000, 0.065, "P", 800, 1, 2),   # N, AQL 0.065: ↓ -> P 1/2
    (200, 6.5, "G", 32, 5, 6),
    (100, 10.0, "F", 20, 5, 6),
    (20, 4.0, "B", 3, 0, 1),         # C, AQL 4.0: ↑ -> B 0/1
    (20, 6.5, "D", 8, 1, 2),         # C, AQL 6.5: ↓ -> D 1/2
    (5, 6.5, "A", 2, 0, 1),
    (5, 1000.0, "A", 2, 30, 31),
    (10, 1000.0, "B", 3, 44, 45),
    (20, 1000.0, "B", 3, 44, 45),    # C, AQL 1000: ↑ -> B
    (600000, 0.010, "Q", 1250, 0, 1),
    (600000, 0.15, "Q", 1250, 5, 6),
]


@pytest.mark.parametrize("lot,aql,letter,n,ac,re", PLANS)
def test_single_sampling_normal_table_2a(lot, aql, letter, n, ac, re):
    plan = sampling_plan(lot, aql)
    assert (plan.plan_letter, plan.sample_size, plan.accept, plan.reject) == (letter, n, ac, re)


def test_printed_table_cells():
    t = plan_table()
    assert t.loc["A", 6.5] == "0/1" and t.loc["A", 1000.0] == "30/31"
    assert t.loc["E", 250.0] == "44/45" and t.loc["F", 150.0] == "↑"  # Ac above 21 only in rows A-E
    assert t.loc["K", 0.15] == "↑" and t.loc["K", 0.25] == "↓"
    assert t.loc["L", 10.0] == "↑" and t.loc["K", 10.0] == "21/22"
    assert list(t.columns[1:]) == list(AQLS)
    for letter in CODE_LETTERS:  # every arrow leads to a plan; Re = Ac + 1 in normal single sampling
        for aql in AQLS:
            cell = t.loc[letter, aql]
            if "/" in cell:
                ac, re = map(int, cell.split("/"))
                assert re == ac + 1


def test_every_plan_resolves():
    for lot in (2, 30, 700, 5000, 10**6):
        for aql in AQLS:
            p = sampling_plan(lot, aql)
            assert 0 <= p.accept < p.reject and p.sample_size <= lot


def test_full_inspection_and_decision():
    p = sampling_plan(3, 0.65)  # A, AQL 0.65: ↓ ... -> F, n=20 > lot
    assert p.full_inspection and p.sample_size == 3
    p = sampling_plan(1000, 1.0)
    assert p.decide(2) == "accept" and p.decide(3) == "reject"
    assert "code J" in p.describe() and "Ac 2, Re 3" in p.describe()


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"AQL 3\.0 is not a column .* nearest are \[2\.5, 4\.0\]"):
        sampling_plan(100, 3.0)
    with pytest.raises(ValueError, match="inspection level 'IV'"):
        code_letter(100, "IV")
    with pytest.raises(ValueError, match="lot_size=0"):
        code_letter(0)
    with pytest.raises(ValueError, match="expected a count"):
        sampling_plan(100, 1.0).decide(-1)


def test_draw_sample_is_reproducible_and_nested():
    ids = list(range(100, 400))
    a = draw_sample(ids, 50, seed=3)
    assert list(a) == list(draw_sample(reversed(ids), 50, seed=3))
    assert list(draw_sample(ids, 20, seed=3)) == list(a[:20])
    assert len(set(a)) == 50 and set(a) <= set(ids)
    assert list(draw_sample(ids, 50, seed=4)) != list(a)
    with pytest.raises(ValueError, match="size=301"):
        draw_sample(ids, 301)
    with pytest.raises(ValueError, match="ids repeat"):
        draw_sample([1, 1, 2], 1)


def test_proportion_interval_against_closed_forms():
    import math

    from scipy.stats import beta

    z = 1.959963984540054
    for k, n in ((0, 13), (3, 50), (7, 80), (80, 80)):
        p = k / n  # Wilson (1927): centre and half-width of the score interval
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        rate, lo, hi = proportion_interval(k, n)
        assert rate == p and lo == pytest.approx(centre - half, abs=1e-9)
        assert hi == pytest.approx(centre + half, abs=1e-9)
        _, lo, hi = proportion_interval(k, n, method="clopper-pearson")  # beta quantiles
        assert lo == pytest.approx(beta.ppf(0.025, k, n - k + 1) if k else 0.0, abs=1e-9)
        assert hi == pytest.approx(beta.ppf(0.975, k + 1, n - k) if k < n else 1.0, abs=1e-9)
    assert [round(v, 4) for v in proportion_interval(3, 50)] == [0.06, 0.0206, 0.1622]
    with pytest.raises(ValueError, match="k=5, n=3"):
        proportion_interval(5, 3)


def test_plan_table_is_a_frame():
    assert isinstance(plan_table(), pd.DataFrame) and plan_table().shape == (16, 27)


# A second, independent reading of ISO 2859-1 Table 2-A (single sampling, normal inspection):
# the Ac=0 diagonal, the "0 1, up-arrow, down-arrow, 1 2" pattern after it, and the
# AQL 1.0 and 4.0 columns; lot sizes chosen inside each code letter's Table 1 range (level II).
LOT = {"A": 5, "B": 12, "C": 20, "D": 40, "E": 70, "F": 120, "G": 200, "H": 400, "J": 1000, "K": 2000,
       "L": 5000, "M": 20000, "N": 100000, "P": 300000, "Q": 600000}
TABLE_2A = {("E", 1.0): (13, 0, 1), ("F", 1.0): (13, 0, 1), ("G", 1.0): (50, 1, 2), ("H", 1.0): (50, 1, 2),
            ("J", 1.0): (80, 2, 3), ("K", 1.0): (125, 3, 4), ("L", 1.0): (200, 5, 6), ("M", 1.0): (315, 7, 8),
            ("N", 1.0): (500, 10, 11), ("P", 1.0): (800, 14, 15), ("Q", 1.0): (1250, 21, 22),
            ("B", 4.0): (3, 0, 1), ("C", 4.0): (3, 0, 1), ("D", 4.0): (13, 1, 2), ("E", 4.0): (13, 1, 2),
            ("F", 4.0): (20, 2, 3), ("G", 4.0): (32, 3, 4), ("H", 4.0): (50, 5, 6), ("J", 4.0): (80, 7, 8),
            ("K", 4.0): (125, 10, 11), ("L", 4.0): (200, 14, 15), ("M", 4.0): (315, 21, 22),
            ("F", 0.65): (20, 0, 1), ("D", 1.5): (8, 0, 1), ("C", 2.5): (5, 0, 1), ("H", 2.5): (50, 3, 4),
            ("J", 0.65): (80, 1, 2)}


@pytest.mark.parametrize("cell, plan", list(TABLE_2A.items()), ids=[f"{k[0]}-{k[1]}" for k in TABLE_2A])
def test_table_2a_second_reading(cell, plan):
    from labkit.quality.sampling import code_letter, sampling_plan

    letter, aql = cell
    assert code_letter(LOT[letter]) == letter
    p = sampling_plan(LOT[letter], aql)
    assert (p.sample_size, p.accept, p.reject) == plan
