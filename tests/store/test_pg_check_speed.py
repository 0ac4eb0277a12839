"""PostgreSQL's fast geometry check (``labkit_geometry_ok``) never changes a decision.

The annotations trigger asks ``labkit_geometry_ok`` first and, only where it is not TRUE,
``labkit_geometry_problem`` (the detailed check, which also says what is wrong). So the
fast check must never say TRUE where the detailed one refuses or raises, and must itself
never raise nor answer NULL. It should also take the shapes the API stores: else bulk
imports are slow again, and no other test would notice.
"""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.postgres

W, H = 40, 30
KINDS = ("box", "polygon", "point", "mask", "label", "ellipse", "bogus")


@pytest.fixture(scope="module")
def engine(pg_server, tmp_path_factory):
    from labkit import Project

    url = pg_server.create_database("fastcheck")
    folder = tmp_path_factory.mktemp("fastcheck")
    (folder / "a.png").touch()  # a manifest's files are not read
    (folder / "manifest.csv").write_text(f"path,width,height,sha256\na.png,{W},{H},{'0' * 64}\n")
    project = Project.create(url, classes=["cat"], workdir=folder / "work")
    project.add_images(manifest=folder / "manifest.csv")
    project.close()
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    yield eng
    eng.dispose()


def _decide(conn, kind: str, text: str) -> tuple[bool | None, str | None, str | None]:
    """(fast, problem, error of the detailed check) for ``text`` as the geometry of a W x H image's ``kind``."""
    fast = conn.exec_driver_sql("SELECT labkit_geometry_ok(%s, %s::json, %s, %s)", (kind, text, W, H)).scalar()
    try:
        problem = conn.exec_driver_sql("SELECT labkit_geometry_problem(%s, %s::json, %s, %s)",
                                       (kind, text, W, H)).scalar()
    except sa.exc.DBAPIError as exc:
        return fast, None, str(exc.orig)
    return fast, problem, None


def _is_json(conn, text: str) -> bool:
    try:
        conn.exec_driver_sql("SELECT %s::json", (text,))
        return True
    except sa.exc.DBAPIError:
        return False


# ---------------------------------------------------------------- JSON text, written by hand --
_INSIDE = ["-0", "1E+1", "2e1", "1e-7", "0.0000001", "29.99999999999999999999", "-1", "30.0"]  # tokens as written
_EDGE = ["41", "31", "-1.0000000000000000001", "41.000000000000000001", "31.000000000000000001", "40.5", "-3",
         "1e400", "-1e400", "1e-400", "1e131072", "1e-20000", "3" + "0" * 30]
_OTHER = ['"abc"', '"1"', '""', '"a:b"', '"0hb0"', '"\\\\"', '"\\n"', '"\\u0000"', '"\\u003a"', '"\\u0030"',
          '"\\/"', '"\\ud800"', '"x\\\\u"', "true", "false", "null", "[]", "{}", '{"x0":1}', "[1]"]
_KEYS = ["x0", "y0", "x1", "y1", "cx", "points", "holes", "parts", "size", "counts", "a:b", "x\\u0030"]


def _texts():
    """(kind, JSON text): geometry of every kind, mostly valid, with a few things changed at random."""
    from hypothesis import strategies as st

    coord = st.one_of(st.integers(0, 30), st.floats(0, 30))
    pair = st.lists(coord, min_size=2, max_size=2)
    ring = st.lists(pair, min_size=3, max_size=8)
    part = st.fixed_dictionaries({"points": ring}, optional={"holes": st.lists(ring, max_size=2)})
    box = st.tuples(pair, pair).map(lambda p: dict(zip(("x0", "x1", "y0", "y1"), sorted(p[0]) + sorted(p[1]))))
    mask = st.fixed_dictionaries({"size": st.just([H, W]), "counts": st.sampled_from(
        ["0hb0", "0:b\\o", "", "5", "a\nb", "\\\\n", "o\\", "\\\"", "p"])})
    kinds = st.one_of(
        st.tuples(st.just("box"), box),
        st.tuples(st.just("polygon"), part),
        st.tuples(st.just("polygon"), st.fixed_dictionaries({"parts": st.lists(part, min_size=1, max_size=3)})),
        st.tuples(st.just("point"), st.fixed_dictionaries({"points": st.lists(pair, min_size=1, max_size=4)})),
        st.tuples(st.just("mask"), mask),
        st.tuples(st.just("label"), st.none()),
    )
    return st.tuples(kinds, st.randoms(use_true_random=False), st.sampled_from([0.0, 0.01, 0.05, 0.3])).map(_mutate)


def _key(k: str) -> str:
    return f'"{k}"' if "\\" in k else json.dumps(k)  # "x\u0030" is "x0", written so


def _mutate(args):
    """Write the value as JSON text, changing each part of it with probability ``rate``."""
    (kind, value), rnd, rate = args
    spaced = rnd.random() < 0.5
    colon, comma = (": ", ", ") if spaced else (":", ",")

    def text(v) -> str:
        if rnd.random() < rate / 3:
            return rnd.choice(_OTHER + _EDGE)
        if isinstance(v, dict):
            items = list(v.items())
            if rnd.random() < rate:
                change = rnd.choice(["repeat", "drop", "extra", "shuffle"])
                if change == "repeat" and items:
                    items.insert(rnd.randrange(len(items) + 1), rnd.choice(items))
                elif change == "drop" and items:
                    items.pop(rnd.randrange(len(items)))
                elif change == "extra":
                    items.insert(rnd.randrange(len(items) + 1), (rnd.choice(_KEYS), rnd.choice(list(v.values()))))
                else:
                    rnd.shuffle(items)
            return "{" + comma.join(_key(k) + colon + text(x) for k, x in items) + "}"
        if isinstance(v, list):
            items = list(v)
            if items and rnd.random() < rate:
                rnd.choice([items.pop, lambda i: items.insert(i, items[i])])(rnd.randrange(len(items)))
            return "[" + comma.join(text(x) for x in items) + "]"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if rnd.random() < rate:
                return rnd.choice(_EDGE)
            if rnd.random() < 0.05:
                return rnd.choice(_INSIDE)
        return json.dumps(v)

    if rnd.random() < rate / 3:
        kind = rnd.choice(KINDS)
    return kind, text(value)


def test_the_fast_check_never_accepts_what_the_detailed_check_refuses(engine):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
    @given(_texts())
    def check(case):
        kind, text = case
        with engine.connect() as conn:
            if not _is_json(conn, text):
                return
            fast, problem, error = _decide(conn, kind, text)
        assert fast is not None, f"the fast check answered NULL for {kind} {text}"
        if fast:
            assert error is None and problem is None, f"the fast check took {kind} {text}: {problem or error}"

    check()


def _canonical():
    """Geometry as the API stores it (normalize_geometry; masks: counts in 0..o, which no check decodes)."""
    from labkit.geometry import normalize_geometry

    rings = [[[1, 2], [39.5, 2.25], [20, 29]], [[-1, -1], [41, -1], [41, 31], [-1, 31]],
             [[0.1, 0.2], [1e-7, 3], [2, 1e-05], [4, 5], [6, 7]]]
    cases = [("box", {"x0": 0, "y0": 0, "x1": 40, "y1": 30}), ("box", {"x0": -1, "y0": 2.5, "x1": 41, "y1": 2.5}),
             ("box", {"x0": 1.25, "y0": 1e-05, "x1": 3.0, "y1": 4.0}), ("point", {"points": [[3, 4]]}),
             ("point", {"points": rings[1]}), ("mask", {"size": [H, W], "counts": "0hb0"}),
             ("mask", {"size": [H, W], "counts": "0\\h:b0"}), ("label", None)]
    cases += [("polygon", {"points": r}) for r in rings]
    cases += [("polygon", {"points": rings[1], "holes": [rings[0]]}),
              ("polygon", {"parts": [{"points": rings[0]}, {"points": rings[2]}]}),
              ("polygon", {"parts": [{"points": rings[1], "holes": [rings[0], rings[2]]}, {"points": rings[0]}]})]
    return [(kind, g if kind == "mask" else normalize_geometry(kind, g, width=W, height=H)) for kind, g in cases]


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_the_fast_check_takes_what_the_api_stores(engine, spaced):
    from labkit.store.bulk import encode_json

    with engine.connect() as conn:
        for kind, geometry in _canonical():
            text = json.dumps(geometry) if spaced else encode_json(geometry)
            fast, problem, error = _decide(conn, kind, text)
            assert (problem, error) == (None, None), (kind, text)
            assert fast is True, f"the fast check left {kind} {text} to the detailed check"


@pytest.mark.parametrize("kind, text", [
    ("box", '{"x0":1,"x0":2,"y0":1,"x1":3,"y1":4}'),  # a key twice: jsonb would keep one, json has both
    ("box", '{"x0":1,"y0":1,"x1":3,"y1":4,"y1":4}'),
    ("box", '{"x0":"1","y0":1,"x1":3,"y1":4}'),
    ("box", '{"x0":1,"y0":1,"x1":3,"y1":4,"a:b":1}'),
    ("polygon", '{"points":[[1,2],[3,4],[5,6]],"points":[[1,2],[3,4],[5,6]]}'),  # stored: keys <@ {holes, points}
    ("polygon", '{"parts":[{"points":[[1,2],[3,4],[5,6]]},{"points":[[1,2],[3,4]]}]}'),
    ("polygon", '{"parts":[{"points":[[1,2],[3,4],[5,6]],"points":[[1,2],[3,4],[5,6]]}]}'),
    ("polygon", '{"parts":[{"points":[[1,2],[3,4],[5,6]]}],"parts":[{"points":[[1,2],[3,4],[5,6]]}]}'),
    ("polygon", '{"points":[[1,2],[3,4],[5,"6"]]}'),
    ("polygon", '{"points":[[1,2],[3,4],[5,99]]}'),
    ("polygon", '{"points":[[1,2],[3,4],[5,6]],"holes":[[[1,2],[3,4]]]}'),
    ("point", '{"points":[[1,2,3]]}'),
    ("point", '{"points":[[1,2]],"points":[[1,2]]}'),
    ("mask", '{"size":[30,40],"counts":"0hb0","counts":"0hb0"}'),
    ("mask", '{"size":[30,40],"counts":"a:b","size":[30,40]}'),
    ("mask", '{"size":[30,40],"counts":"0h:b0"}'),
    ("mask", '{"size":[30,40],"counts":"0h\\\\b0"}'),  # an escaped backslash: in 0..o
    ("mask", '{"size":[30,40],"counts":"0h\\nb0"}'),  # a newline: not
    ("mask", '{"size":[30,40],"counts":"0h\\"b0"}'),
    ("mask", '{"size":[30.0,40],"counts":"0hb0"}'),
    ("label", '{"x0":1}'),
])
def test_the_trigger_decides_as_the_detailed_check(engine, kind, text):
    """What the detailed check refuses the trigger refuses, in its words; the rest is stored."""
    insert = ("INSERT INTO annotations (image_id, annotator_id, kind, class_id, geometry, source, provenance, "
              "version, created_at, updated_at) VALUES ((SELECT min(id) FROM images), "
              "(SELECT min(id) FROM annotators), %s, 1, %s::json, 'human', '{}', 1, now(), now())")
    with engine.connect() as conn:
        fast, problem, error = _decide(conn, kind, text)
        assert error is None and not (fast and problem)
    with engine.execution_options(isolation_level="READ COMMITTED").connect() as conn:
        if problem is None:
            conn.exec_driver_sql(insert, (kind, text))
        else:
            with pytest.raises(sa.exc.DBAPIError) as exc:
                conn.exec_driver_sql(insert, (kind, text))
            assert f"labkit: annotation refused: {problem}" in str(exc.value.orig)
        conn.rollback()


_NEAR_EDGES = ["41", "41.0", "41.0000001", "41.0000000000000001", "41.000000000000000001", "40.9999999", "40.999999",
               "-1", "-1.0000001", "-1.0000000000000001", "-0.9999999", "31", "31.0000001", "30.9999999", "1e-320"]


@pytest.mark.parametrize("value", _NEAR_EDGES)
@pytest.mark.parametrize("kind", ["polygon", "point"])
def test_rings_near_the_edges_are_decided_exactly(engine, kind, value):
    """Points within a rounding of the image's edges (1 px tolerance), in x and in y: the fast check decides
    as the detailed one, on exact numbers (a float8 reading would take 41.000000000000000001 as 41)."""
    with engine.connect() as conn:
        for ring in ([[value, "2"], ["3", "4"], ["5", "6"]], [["2", value], ["3", "4"], ["5", "6"]]):
            text = '{"points":[' + ",".join(f"[{x},{y}]" for x, y in ring) + "]}"
            fast, problem, error = _decide(conn, kind, text)
            exact = problem is None and error is None
            assert fast is exact, f"{kind} {text}: fast check {fast}, detailed {problem or error or 'fine'}"


_BOXES = ['{"x0":1,"y0":2,"x1":3,"y1":4}', '{"x0": -1, "y0": 0, "x1": 41, "y1": 31}', '{"y1":4,"x1":3,"y0":2,"x0":1}',
          '{"x0":1E+1,"y0":2e-1,"x1":1e1,"y1":3.0}', '{"x0":1,"y0":2,"x1":41.000000000000000001,"y1":4}',
          '{"x0":-1.0000000000000000001,"y0":2,"x1":3,"y1":4}', '{"x0":3,"y0":2,"x1":1,"y1":4}',
          '{"x0":1,"y0":2,"x1":3,"y1":31.5}', '{"x0":"1","y0":2,"x1":3,"y1":4}', '{"x0":null,"y0":2,"x1":3,"y1":4}',
          '{"x0":[1],"y0":2,"x1":3,"y1":4}', '{"x0":{"a":1},"y0":2,"x1":3}', '{"x0":true,"y0":2,"x1":3,"y1":4}',
          '{"x0":1,"y0":2,"x1":3,"z":4}', '{"x0":1,"y0":2,"x1":3,"y1":4,"y1":4}',
          '{"x0":1,"x0":2,"y0":1,"x1":3,"y1":4}',
          '{"x\\u0030":1,"y0":2,"x1":3,"y1":4}', '{"x\\/0":1,"y0":2,"x1":3,"y1":4}', '{"x0":1,"y0":2,"x1":3,"a:b":4}',
          '[{"x0":1,"y0":2},{"x1":3,"y1":4}]', '{"x0":1,"y0":2,"x1":3,"y1":4,"s":"\\u0000"}', '"box"', 'null',
          '{"x0":1e400,"y0":2,"x1":3,"y1":4}']
_BOXES += ['{"x0":1,"y0":2,"x1":3,"y1":4}'.replace(f'"{k}":{n}', f'"{k}":{v}')  # a value not a number, anywhere
           for k, n in (("y0", 2), ("x1", 3), ("y1", 4)) for v in ('"9"', "null", "[9]", "false")]


@pytest.mark.parametrize("text", _BOXES)
def test_the_statement_check_decides_boxes_as_the_detailed_check(engine, text):
    """A bulk insert's rows skip the row trigger (they hold the database's stamps) and are checked by the
    statement's trigger alone: it refuses what the detailed check refuses, in its words, and stores the
    rest (a value that is not a number, in any of the four places; keys repeated, escaped, missing)."""
    insert = ("INSERT INTO annotations (image_id, annotator_id, kind, class_id, geometry, source, provenance, "
              "version, created_at, updated_at, updated_by) VALUES ((SELECT min(id) FROM images), "
              "(SELECT min(id) FROM annotators), 'box', 1, %s::json, 'human', '{}', 1, now(), now(), "
              "current_setting('labkit.stamped'))")
    with engine.connect() as conn:
        assert _is_json(conn, text)
        _, problem, error = _decide(conn, "box", text)
    with engine.execution_options(isolation_level="READ COMMITTED").connect() as conn:
        conn.exec_driver_sql("SELECT set_config('labkit.stamped', coalesce(labkit_name(), session_user::text), true)")
        if problem is None and error is None:
            conn.exec_driver_sql(insert, (text,))
            trigger = conn.exec_driver_sql("SELECT count(*) FROM annotations WHERE geometry::text = %s",
                                           (text,)).scalar()
            assert trigger == 1
        else:
            with pytest.raises(sa.exc.DBAPIError) as exc:
                conn.exec_driver_sql(insert, (text,))
            said = str(exc.value.orig)
            assert (f"labkit: annotation refused: {problem}" in said) if problem else (error.split("\n")[0] in said)
        conn.rollback()
