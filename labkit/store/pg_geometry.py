"""PostgreSQL functions that check an annotation's geometry, installed by :mod:`labkit.store.guards`.

``labkit_geometry_problem(kind, g, w, h)`` is the rule of
:func:`labkit.geometry.normalize_geometry` in PL/pgSQL: NULL where ``g`` is canonical geometry
of ``kind``, made of finite numbers inside a ``w`` x ``h`` image (1 px tolerance), else what
is wrong. ``labkit_geometry_ok`` is its fast path for bulk imports: TRUE only where the
detailed check returns NULL, decided by a few operations on the whole JSON text; it never
raises. ``tests/store/test_pg_check_speed.py`` holds the two together.
"""
from __future__ import annotations

__all__ = ["FUNCTIONS"]

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION labkit_num(v json) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN json_typeof(v) = 'number' THEN (v #>> '{}')::numeric END $$;

CREATE OR REPLACE FUNCTION labkit_keys(g json) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT array_agg(k ORDER BY k) FROM json_object_keys(g) k $$;

CREATE OR REPLACE FUNCTION labkit_ring_problem(r json, min_points integer, w numeric, h numeric)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE p json; x numeric; y numeric;
BEGIN
  IF r IS NULL OR json_typeof(r) <> 'array' OR json_array_length(r) < min_points THEN
    RETURN format('a ring needs at least %s [x, y] points', min_points);
  END IF;
  FOR p IN SELECT json_array_elements(r) LOOP
    IF json_typeof(p) <> 'array' OR json_array_length(p) <> 2 THEN RETURN 'points are [x, y] pairs'; END IF;
    x := labkit_num(p -> 0); y := labkit_num(p -> 1);
    IF x IS NULL OR y IS NULL THEN RETURN 'coordinates must be numbers'; END IF;
    IF x < -1 OR x > w + 1 OR y < -1 OR y > h + 1 THEN RETURN 'a point lies outside the image'; END IF;
  END LOOP;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION labkit_part_problem(g json, w numeric, h numeric)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE hole json; problem text;
BEGIN
  IF json_typeof(g) <> 'object' OR NOT coalesce(labkit_keys(g) <@ ARRAY['holes', 'points'], false)
     OR g -> 'points' IS NULL THEN
    RETURN 'a polygon is {"points": ..., "holes": [...]} or {"parts": [...]}';
  END IF;
  problem := labkit_ring_problem(g -> 'points', 3, w, h);
  IF problem IS NOT NULL THEN RETURN problem; END IF;
  IF g -> 'holes' IS NOT NULL THEN
    IF json_typeof(g -> 'holes') <> 'array' THEN RETURN 'holes are a list of rings'; END IF;
    FOR hole IN SELECT json_array_elements(g -> 'holes') LOOP
      problem := labkit_ring_problem(hole, 3, w, h);
      IF problem IS NOT NULL THEN RETURN problem; END IF;
    END LOOP;
  END IF;
  RETURN NULL;
END $$;

-- NULL if g is canonical geometry of kind, made of finite numbers inside a w x h image (1 px
-- tolerance), else what is wrong: the rules of labkit.geometry.normalize_geometry.
CREATE OR REPLACE FUNCTION labkit_geometry_problem(kind text, g json, w numeric, h numeric)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE v numeric[]; t double precision; c numeric; sn numeric; hx numeric; hy numeric; part json; problem text;
BEGIN
  IF kind = 'label' THEN
    RETURN CASE WHEN g IS NULL OR json_typeof(g) = 'null' THEN NULL ELSE 'an image-level label has no geometry' END;
  END IF;
  IF g IS NULL OR json_typeof(g) <> 'object' THEN RETURN format('%s geometry must be a JSON object', kind); END IF;
  IF kind = 'box' THEN
    IF labkit_keys(g) IS DISTINCT FROM ARRAY['x0', 'x1', 'y0', 'y1'] THEN
      RETURN 'a box is {"x0", "y0", "x1", "y1"}';
    END IF;
    v := ARRAY[labkit_num(g -> 'x0'), labkit_num(g -> 'y0'), labkit_num(g -> 'x1'), labkit_num(g -> 'y1')];
    IF array_position(v, NULL) IS NOT NULL THEN RETURN 'box coordinates must be numbers'; END IF;
    IF v[1] > v[3] OR v[2] > v[4] THEN RETURN 'the box is inverted'; END IF;
    IF v[1] < -1 OR v[2] < -1 OR v[3] > w + 1 OR v[4] > h + 1 THEN RETURN 'the box lies outside the image'; END IF;
  ELSIF kind = 'ellipse' THEN
    IF labkit_keys(g) IS DISTINCT FROM ARRAY['angle', 'cx', 'cy', 'rx', 'ry'] THEN
      RETURN 'an ellipse is {"cx", "cy", "rx", "ry", "angle"}';
    END IF;
    v := ARRAY[labkit_num(g -> 'cx'), labkit_num(g -> 'cy'), labkit_num(g -> 'rx'), labkit_num(g -> 'ry'),
               labkit_num(g -> 'angle')];
    IF array_position(v, NULL) IS NOT NULL THEN RETURN 'ellipse values must be numbers'; END IF;
    IF v[3] < 0 OR v[4] < 0 THEN RETURN 'an ellipse has radii >= 0'; END IF;
    IF abs(v[1]) > w + 1e6 OR abs(v[2]) > h + 1e6 OR v[3] > w + h + 1e6 OR v[4] > w + h + 1e6
       OR abs(v[5]) > 1e300 THEN
      RETURN 'the ellipse lies outside the image';
    END IF;
    -- an angle under 1e-300 degrees is 0 (cos 1, sin within 1e-302 of it): radians() of a denormal
    -- underflows, which float8 raises as an error, and a numeric below 1e-308 does not cast at all
    t := CASE WHEN abs(v[5]) < 1e-300 THEN 0 ELSE radians(v[5]::double precision) END;
    c := cos(t)::numeric; sn := sin(t)::numeric;  -- numeric: float8 would raise on underflow (radii ~1e-200)
    hx := sqrt((v[3] * c) ^ 2 + (v[4] * sn) ^ 2);
    hy := sqrt((v[3] * sn) ^ 2 + (v[4] * c) ^ 2);
    -- 1e-9: rounding here must never refuse what the API's own arithmetic accepted
    IF v[1] - hx < -1 - 1e-9 OR v[1] + hx > w + 1 + 1e-9 OR v[2] - hy < -1 - 1e-9 OR v[2] + hy > h + 1 + 1e-9 THEN
      RETURN 'the ellipse lies outside the image';
    END IF;
  ELSIF kind = 'polygon' THEN
    IF g -> 'parts' IS NULL THEN RETURN labkit_part_problem(g, w, h); END IF;
    IF labkit_keys(g) IS DISTINCT FROM ARRAY['parts'] OR json_typeof(g -> 'parts') <> 'array'
       OR json_array_length(g -> 'parts') < 1 THEN
      RETURN 'polygon parts are a non-empty list';
    END IF;
    FOR part IN SELECT json_array_elements(g -> 'parts') LOOP
      problem := labkit_part_problem(part, w, h);
      IF problem IS NOT NULL THEN RETURN problem; END IF;
    END LOOP;
  ELSIF kind = 'point' THEN
    IF labkit_keys(g) IS DISTINCT FROM ARRAY['points'] THEN RETURN 'points are {"points": [[x, y], ...]}'; END IF;
    RETURN labkit_ring_problem(g -> 'points', 1, w, h);
  ELSIF kind = 'mask' THEN
    IF labkit_keys(g) IS DISTINCT FROM ARRAY['counts', 'size'] OR json_typeof(g -> 'size') <> 'array'
       OR json_array_length(g -> 'size') <> 2 OR json_typeof(g -> 'counts') <> 'string' THEN
      RETURN 'a mask is COCO compressed RLE {"size": [H, W], "counts": "..."}';
    END IF;
    IF labkit_num(g -> 'size' -> 0) IS DISTINCT FROM h OR labkit_num(g -> 'size' -> 1) IS DISTINCT FROM w THEN
      RETURN 'the mask''s size is not the image''s';
    END IF;
    IF (g ->> 'counts') ~ '[^0-o]' THEN RETURN 'mask counts are not COCO compressed RLE'; END IF;
  ELSE
    RETURN format('unknown kind %s', kind);
  END IF;
  RETURN NULL;
END $$;

-- The fast path of the check (bulk imports store hundreds of thousands of rows): TRUE only
-- where labkit_geometry_problem returns NULL, decided by a few operations on the whole
-- text instead of SQL per point. FALSE means "not decided here" (ellipses, rare encodings,
-- anything invalid): the caller then asks labkit_geometry_problem, which also says what is
-- wrong. It never raises: whatever would is left to labkit_geometry_problem.
--
-- Keys: in JSON text each key is followed by a colon and any other colon is inside a
-- string, so there are at least as many colons as keys written. Where the colons are
-- exactly the keys the shape needs (each found by name), there is no other key and none
-- twice (json keeps a repeated key, which labkit_keys refuses; jsonb keeps only the last).
CREATE OR REPLACE FUNCTION labkit_geometry_ok(kind text, g json, w numeric, h numeric)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE t text; colons integer; j jsonb; v numeric[]; c text; piece text; ring text; part jsonb; parts integer;
  keys integer;
BEGIN
  IF kind = 'box' THEN
    BEGIN
      j := g::jsonb;
      -- jsonb numbers are numeric, as labkit_num reads them; the cast raises on anything else
      v := ARRAY[(j -> 'x0')::numeric, (j -> 'y0')::numeric, (j -> 'x1')::numeric, (j -> 'y1')::numeric];
    EXCEPTION WHEN others THEN  -- not a number, or JSON jsonb refuses (\u0000, beyond numeric)
      RETURN false;
    END;
    t := g::text;
    RETURN coalesce(octet_length(t) - octet_length(replace(t, ':', '')) = 4 AND v[1] <= v[3] AND v[2] <= v[4]
                    AND v[1] >= -1 AND v[2] >= -1 AND v[3] <= w + 1 AND v[4] <= h + 1, false);
  ELSIF kind = 'label' THEN
    RETURN g IS NULL OR json_typeof(g) = 'null';
  ELSIF kind IS NULL OR kind NOT IN ('polygon', 'point', 'mask') THEN
    RETURN false;  -- ellipses (and unknown kinds): the detailed check
  END IF;
  t := g::text;
  -- \u escapes: json's operators raise on \u0000, and one can write a colon inside a string
  IF t IS NULL OR strpos(t, E'\\u') > 0 THEN RETURN false; END IF;
  colons := octet_length(t) - octet_length(replace(t, ':', ''));
  IF kind = 'mask' THEN
    -- compact {"size":[h,w],"counts":"..."} whose counts escape nothing but backslashes (\\):
    -- the text is the value, give or take doubled backslashes, which change no character's class
    c := split_part(t, '"', 6);
    IF t = '{"size":[' || h || ',' || w || '],"counts":"' || c || '"}'
       AND strpos(replace(c, E'\\\\', ''), E'\\') = 0 THEN
      RETURN c !~ '[^0-o]';
    END IF;
    BEGIN
      j := t::jsonb;
      v := ARRAY[(j -> 'size' -> 0)::numeric, (j -> 'size' -> 1)::numeric];
    EXCEPTION WHEN others THEN
      RETURN false;
    END;
    c := CASE WHEN jsonb_typeof(j -> 'counts') = 'string' THEN j ->> 'counts' END;
    RETURN coalesce(colons = 2 + octet_length(c) - octet_length(replace(c, ':', ''))
                    AND CASE WHEN jsonb_typeof(j -> 'size') = 'array' THEN jsonb_array_length(j -> 'size') END = 2
                    AND v[1] = h AND v[2] = w AND c !~ '[^0-o]', false);
  END IF;
  IF colons = 1 THEN  -- {"points": ring}
    RETURN labkit_ring_ok((g -> 'points')::text, CASE WHEN kind = 'point' THEN 1 ELSE 3 END, w, h);
  ELSIF kind = 'point' THEN
    RETURN false;
  ELSIF starts_with(t, '{"parts":[{"points":') AND strpos(t, '"holes"') = 0 THEN
    -- compact parts without holes, {"parts":[{"points":ring},{"points":ring}]}: the text
    -- after each "points": is a ring, up to its part's closing brace (rings that pass hold
    -- no quotes or braces); the text is valid JSON, so },{ and }]} are where they belong
    parts := 0;
    FOREACH piece IN ARRAY string_to_array(t, '"points":') LOOP
      IF parts > 0 THEN
        ring := split_part(piece, '}', 1);
        IF piece NOT IN (ring || '},{', ring || '}]}') OR NOT labkit_ring_ok(ring, 3, w, h) THEN
          RETURN false;
        END IF;
      END IF;
      parts := parts + 1;
    END LOOP;
    RETURN colons = parts;  -- "parts" and each part's "points"
  END IF;
  BEGIN  -- holes, or other layouts: one jsonb, walked without parsing again
    j := t::jsonb;
  EXCEPTION WHEN others THEN
    RETURN false;
  END;
  IF jsonb_typeof(j) IS DISTINCT FROM 'object' THEN RETURN false; END IF;
  IF j ? 'parts' THEN
    IF jsonb_typeof(j -> 'parts') IS DISTINCT FROM 'array' THEN RETURN false; END IF;
    parts := jsonb_array_length(j -> 'parts');
    keys := 1;  -- the keys seen: "parts", then each part's
  ELSE
    parts := 1;  -- the polygon is its one part
    keys := 0;
  END IF;
  IF parts < 1 THEN RETURN false; END IF;
  FOR i IN 0 .. parts - 1 LOOP
    part := CASE WHEN j ? 'parts' THEN j -> 'parts' -> i ELSE j END;
    IF jsonb_typeof(part) IS DISTINCT FROM 'object' OR NOT labkit_ring_ok((part -> 'points')::text, 3, w, h) THEN
      RETURN false;
    END IF;
    keys := keys + 1;
    IF part ? 'holes' THEN
      IF jsonb_typeof(part -> 'holes') IS DISTINCT FROM 'array' THEN RETURN false; END IF;
      FOR k IN 0 .. jsonb_array_length(part -> 'holes') - 1 LOOP
        IF NOT labkit_ring_ok((part -> 'holes' -> k)::text, 3, w, h) THEN RETURN false; END IF;
      END LOOP;
      keys := keys + 1;
    END IF;
  END LOOP;
  RETURN colons = keys;
END $$;

-- A ring [[x, y], ...] of at least min_points points inside the image, read by one cast to
-- numeric[][] (brackets to braces; the text may hold no quotes or braces): that takes n
-- lists of 2 numbers (ragged lists, true and false raise; a JSON null is a NULL that no
-- bound passes), each read from its JSON text as labkit_num reads it.
CREATE OR REPLACE FUNCTION labkit_ring_ok(r text, min_points integer, w numeric, h numeric)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE a numeric[];
BEGIN
  IF r IS NULL OR strpos(r, '"') > 0 OR strpos(r, '{') > 0 THEN RETURN false; END IF;
  BEGIN
    a := replace(replace(r, '[', '{'), ']', '}')::numeric[];
  EXCEPTION WHEN others THEN
    RETURN false;
  END;
  RETURN coalesce(array_ndims(a) = 2 AND array_length(a, 2) = 2 AND array_length(a, 1) >= min_points
                  AND -1 <= ALL (a) AND w + 1 >= ALL (a[:][1:1]) AND h + 1 >= ALL (a[:][2:2]), false);
END $$;

"""
