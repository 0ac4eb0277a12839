"""Sampling inspection by attributes, ISO 2859-1: single sampling, normal inspection.

Encodes ISO 2859-1:1999 (Sampling procedures for inspection by attributes — Part 1:
Sampling schemes indexed by acceptance quality limit (AQL) for lot-by-lot inspection),
Table 1 (sample size code letters) and Table 2-A (single sampling plans for normal
inspection, master table). The same tables are ANSI/ASQ Z1.4 (Tables I and II-A) and
MIL-STD-105E.

Table 2-A is stored by its construction: in each row (code letter) the plans lie on
diagonals, the first plan with Ac = 0 one AQL column further left per row, followed by
an up arrow, a down arrow and then Ac = 1, 2, 3, 5, 7, 10, 14, 21 (and 30, 44 in the
rows A-E, for the AQLs above 10 in nonconformities per 100 items); cells past the last
plan of a row are up arrows. An arrow means: use the first sampling plan above (↑) or
below (↓) it, *with that plan's sample size*. Two cells of the printed table point off
it under this rule (row A's ↑ and row R's ↓); they are resolved the other way, which
is what the printed table shows there.

- :func:`code_letter`: lot size and inspection level -> code letter (Table 1).
- :func:`sampling_plan`: lot size, AQL, level -> :class:`SamplingPlan` (n, Ac, Re).
- :func:`draw_sample`: a reproducible simple random sample of item ids.
- :func:`proportion_interval`: an error rate with a Wilson or Clopper-Pearson interval.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["AQLS", "CODE_LETTERS", "LEVELS", "SAMPLE_SIZES", "SamplingPlan", "code_letter",
           "plan_table", "sampling_plan", "draw_sample", "proportion_interval"]

#: Sample size code letters in order, and their sample sizes (Table 2-A).
CODE_LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "Q", "R")
SAMPLE_SIZES = dict(zip(CODE_LETTERS, (2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800,
                                       1250, 2000)))
#: AQL columns of Table 2-A, in percent nonconforming (up to 10) or nonconformities per 100 items.
AQLS = (0.010, 0.015, 0.025, 0.040, 0.065, 0.10, 0.15, 0.25, 0.40, 0.65, 1.0, 1.5, 2.5, 4.0, 6.5,
        10.0, 15.0, 25.0, 40.0, 65.0, 100.0, 150.0, 250.0, 400.0, 650.0, 1000.0)
#: Inspection levels of Table 1: special S-1..S-4 and general I, II (the default), III.
LEVELS = ("S-1", "S-2", "S-3", "S-4", "I", "II", "III")

# Table 1: upper end of each lot size range, and the code letter per level.
_LOT_MAX = (8, 15, 25, 50, 90, 150, 280, 500, 1200, 3200, 10000, 35000, 150000, 500000, math.inf)
_TABLE_1 = {  # one string per level, one letter per lot size range
    "S-1": "AAAABBBBCCCCDDD",
    "S-2": "AAABBBCCCDDDEEE",
    "S-3": "AABBCCDDEEFFGGH",
    "S-4": "AABCCDEEFGGHJJK",
    "I":   "AABCCDEFGHJKLMN",
    "II":  "ABCDEFGHJKLMNPQ",
    "III": "BCDEFGHJKLMNPQR",
}
_ACCEPT = (0, None, None, 1, 2, 3, 5, 7, 10, 14, 21, 30, 44)  # None: ↑ then ↓
_FIRST = 14  # AQL column (6.5) of row A's Ac = 0 plan; one column left per row
_SMALL_ROWS_MAX_AC = 44  # rows A-E
_MAX_AC = 21  # rows F-R


@dataclass(frozen=True)
class SamplingPlan:
    """A single sampling plan: inspect ``sample_size`` items, accept the lot with at most
    ``accept`` nonconforming items (Ac), reject with ``reject`` (Re) or more.

    ``letter`` is the code letter from Table 1; ``plan_letter`` the row the plan was
    taken from after following arrows (its sample size applies). With a sample as
    large as the lot, every item is inspected (``full_inspection``).
    """

    lot_size: int
    aql: float
    level: str
    letter: str
    plan_letter: str
    sample_size: int
    accept: int
    reject: int
    full_inspection: bool = False

    def decide(self, nonconforming: int) -> str:
        """``"accept"`` when at most Ac nonconforming items were found, else ``"reject"``."""
        if isinstance(nonconforming, bool) or not isinstance(nonconforming, (int, np.integer)) \
                or nonconforming < 0:
            raise ValueError(f"nonconforming={nonconforming!r}; expected a count >= 0")
        return "accept" if nonconforming <= self.accept else "reject"

    def _aql_text(self) -> str:
        # Table 2-A: up to 10 the AQL is percent nonconforming, above it nonconformities per 100 items
        return f"AQL {self.aql:g}%" if self.aql <= 10 else f"AQL {self.aql:g} per 100 items"

    def rule(self) -> str:
        """The acceptance rule in words, with the plan's numbers (for a report's "required" column).

        Examples
        --------
        >>> sampling_plan(304, 2.5).rule()
        'ISO 2859-1 plan for AQL 2.5%: accept the lot with ≤ Ac 3 defective of 50 sampled'
        """
        return (f"ISO 2859-1 plan for {self._aql_text()}: accept the lot with ≤ Ac {self.accept} defective "
                f"of {self.sample_size} sampled")

    def outcome(self, nonconforming: int) -> str:
        """The decision for ``nonconforming`` items found in the sample, in words.

        Examples
        --------
        >>> p = sampling_plan(304, 2.5)  # n = 50, Ac 3, Re 4
        >>> p.outcome(3)
        '3 of 50 sampled defective ≤ Ac 3: lot accepted'
        >>> p.outcome(4)
        '4 of 50 sampled defective ≥ Re 4: lot rejected'
        """
        if self.decide(nonconforming) == "accept":
            return f"{nonconforming} of {self.sample_size} sampled defective ≤ Ac {self.accept}: lot accepted"
        return f"{nonconforming} of {self.sample_size} sampled defective ≥ Re {self.reject}: lot rejected"

    def describe(self) -> str:
        via = "" if self.plan_letter == self.letter else f" (arrow to {self.plan_letter})"
        full = ", 100% inspection" if self.full_inspection else ""
        return (f"ISO 2859-1 single sampling, normal inspection, level {self.level}: lot "
                f"{self.lot_size} -> code {self.letter}{via}, n = {self.sample_size}, AQL {self.aql:g}: "
                f"Ac {self.accept}, Re {self.reject}{full}")


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"inspection level {level!r}; expected one of {LEVELS} (general level II "
                         "is the usual choice)")
    return level


def code_letter(lot_size: int, level: str = "II") -> str:
    """Sample size code letter for a lot size (ISO 2859-1 Table 1).

    Examples
    --------
    >>> code_letter(1000), code_letter(500), code_letter(50), code_letter(50, "III")
    ('J', 'H', 'D', 'E')
    """
    level = _check_level(level)
    if isinstance(lot_size, bool) or not isinstance(lot_size, (int, np.integer)) or lot_size < 1:
        raise ValueError(f"lot_size={lot_size!r}; expected a positive number of items")
    row = bisect.bisect_left(_LOT_MAX, max(int(lot_size), 2))
    return _TABLE_1[level][row]


def _aql_column(aql: float) -> int:
    for j, a in enumerate(AQLS):
        if math.isclose(float(aql), a, rel_tol=1e-9):
            return j
    near = sorted(AQLS, key=lambda a: abs(math.log(a) - math.log(max(float(aql), 1e-9))))[:2]
    raise ValueError(f"AQL {aql!r} is not a column of ISO 2859-1 Table 2-A; the nearest are "
                     f"{sorted(near)}. Valid AQLs: {list(AQLS)}")


def _cell(row: int, col: int) -> tuple[int, int] | str:
    """Table 2-A cell: ``(Ac, Re)``, ``"up"`` or ``"down"``."""
    offset = col - (_FIRST - row)
    if offset < 0:
        return "down"
    if offset >= len(_ACCEPT):
        return "up"
    ac = _ACCEPT[offset]
    if ac is None:
        arrow = "up" if offset == 1 else "down"
        if arrow == "up" and row == 0:
            return "down"
        if arrow == "down" and row == len(CODE_LETTERS) - 1:
            return "up"
        return arrow
    if ac > (_SMALL_ROWS_MAX_AC if row <= CODE_LETTERS.index("E") else _MAX_AC):
        return "up"
    return ac, ac + 1


def plan_table() -> pd.DataFrame:
    """Table 2-A as printed: rows are code letters, columns AQLs, cells ``"Ac/Re"``, ``"↑"`` or ``"↓"``.

    Examples
    --------
    >>> t = plan_table()
    >>> t.loc["J", 1.0], t.loc["D", 1.0], t.loc["F", 1.0], t.loc["K", 4.0]
    ('2/3', '↓', '↑', '10/11')
    """
    rows = {}
    for r, letter in enumerate(CODE_LETTERS):
        cells = []
        for c in range(len(AQLS)):
            v = _cell(r, c)
            cells.append({"up": "↑", "down": "↓"}.get(v) if isinstance(v, str) else f"{v[0]}/{v[1]}")
        rows[letter] = cells
    out = pd.DataFrame.from_dict(rows, orient="index", columns=list(AQLS))
    out.index.name = "code letter"
    out.insert(0, "sample size", [SAMPLE_SIZES[k] for k in CODE_LETTERS])
    return out


def sampling_plan(lot_size: int, aql: float, *, level: str = "II") -> SamplingPlan:
    """The ISO 2859-1 single sampling plan for normal inspection.

    Parameters
    ----------
    lot_size : int
        Number of items in the lot (e.g. images in the delivery).
    aql : float
        Acceptance quality limit, one of :data:`AQLS` (percent nonconforming, e.g. 1.0).
    level : str, default "II"
        Inspection level (Table 1).

    Returns
    -------
    SamplingPlan

    References
    ----------
    ISO 2859-1:1999, Sampling procedures for inspection by attributes — Part 1, Tables 1
    and 2-A (identical to ANSI/ASQ Z1.4-2003 (R2018) Tables I and II-A).

    Examples
    --------
    >>> p = sampling_plan(1000, 1.0)
    >>> p.letter, p.sample_size, p.accept, p.reject
    ('J', 80, 2, 3)
    >>> p = sampling_plan(50, 1.0)  # D's cell is an arrow down: E's plan, n = 13
    >>> p.letter, p.plan_letter, p.sample_size, p.accept, p.reject
    ('D', 'E', 13, 0, 1)
    """
    letter = code_letter(lot_size, level)
    col = _aql_column(aql)
    row = CODE_LETTERS.index(letter)
    cell = _cell(row, col)
    while isinstance(cell, str):  # an arrow: follow it to the row that has a plan
        row += 1 if cell == "down" else -1
        cell = _cell(row, col)
    accept, reject = cell
    n = SAMPLE_SIZES[CODE_LETTERS[row]]
    full = n >= lot_size
    return SamplingPlan(lot_size=int(lot_size), aql=AQLS[col], level=level, letter=letter,
                        plan_letter=CODE_LETTERS[row], sample_size=min(n, int(lot_size)),
                        accept=accept, reject=reject, full_inspection=full)


def draw_sample(ids: Sequence[Any], size: int, *, seed: int = 0) -> pd.Index:
    """A simple random sample of ``size`` ids, reproducible from ``seed``, in draw order.

    The ids are sorted first, so the sample depends on the set of ids and the seed only.
    The first ``k`` ids of a sample of size ``n >= k`` are themselves a simple random
    sample of size ``k`` (same seed), so plans of several sizes can share one draw.

    Examples
    --------
    >>> list(draw_sample([5, 3, 9, 1, 7], 3, seed=1)) == list(draw_sample([1, 3, 5, 7, 9], 3, seed=1))
    True
    >>> list(draw_sample(range(10), 4, seed=2)[:2]) == list(draw_sample(range(10), 2, seed=2))
    True
    """
    index = pd.Index(ids)
    if index.has_duplicates:
        raise ValueError(f"ids repeat: {list(index[index.duplicated()][:10])}; each item must appear once")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 0 <= size <= len(index):
        raise ValueError(f"size={size!r}; expected an integer between 0 and the {len(index)} ids")
    ordered = index.sort_values()
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return pd.Index(ordered[perm[:size]], name=index.name or "image")


def proportion_interval(k: int, n: int, *, method: str = "wilson", level: float = 0.95
                        ) -> tuple[float, float, float]:
    """``(rate, low, high)``: ``k / n`` with a confidence interval for a binomial proportion.

    Parameters
    ----------
    method : {"wilson", "clopper-pearson"}
        Wilson's score interval, or the exact Clopper-Pearson interval (scipy's
        ``binomtest(...).proportion_ci``).

    References
    ----------
    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
    inference. JASA 22(158), 209-212. https://doi.org/10.1080/01621459.1927.10502953
    Clopper, C. J., & Pearson, E. S. (1934). The use of confidence or fiducial limits
    illustrated in the case of the binomial. Biometrika 26(4), 404-413.
    https://doi.org/10.1093/biomet/26.4.404

    Examples
    --------
    >>> [round(v, 4) for v in proportion_interval(3, 50)]
    [0.06, 0.0206, 0.1622]
    """
    for what, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{what}={v!r}; expected a count >= 0")
    if n == 0 or k > n:
        raise ValueError(f"k={k}, n={n}; expected 0 <= k <= n and n > 0")
    if method not in ("wilson", "clopper-pearson"):
        raise ValueError(f"method={method!r}; expected 'wilson' or 'clopper-pearson'")
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level,
                                                 method="wilson" if method == "wilson" else "exact")
    return k / n, float(ci.low), float(ci.high)
