// labkit PromptCanvas: an image (with overlays drawn by the kernel) that turns
// clicks into prompts: point prompts (left = object, right/shift = background),
// polygon vertices, single points and ellipses (drag a rectangle).
// The Labeler's keys are handled for the whole Labeler by labeler_keys.js.
const NS = "http://www.w3.org/2000/svg";

function render({ model, el }) {
  el.classList.add("labkit-prompt-canvas");
  const wrap = document.createElement("div");
  wrap.style.cssText = "position:relative;display:inline-block;max-width:100%;line-height:0;user-select:none";
  const img = document.createElement("img");
  img.draggable = false;
  img.style.cssText = "max-width:100%;display:block";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.style.cssText = "position:absolute;left:0;top:0;width:100%;height:100%;cursor:crosshair";
  wrap.setAttribute("data-jp-suppress-context-menu", "");  // right click = background prompt
  wrap.append(img, svg);
  el.append(wrap);

  let url = null;
  let poly = [];      // polygon being drawn, image px
  let drag = null;    // ellipse drag: [x0, y0, x1, y1]

  function setImage() {
    const data = model.get("image");
    if (!data || !data.byteLength) return;
    if (url) URL.revokeObjectURL(url);
    url = URL.createObjectURL(new Blob([data], { type: "image/" + model.get("format") }));
    img.src = url;
  }
  img.addEventListener("load", () => {
    svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
    draw();
  });

  function toImage(ev) {
    const r = img.getBoundingClientRect();
    return [(ev.clientX - r.left) * img.naturalWidth / r.width,
            (ev.clientY - r.top) * img.naturalHeight / r.height];
  }
  function scale() {
    const r = img.getBoundingClientRect();
    return r.width ? img.naturalWidth / r.width : 1;
  }
  function add(tag, attrs) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    svg.append(e);
    return e;
  }
  function draw() {
    svg.replaceChildren();
    const s = scale();
    if (poly.length) {
      add("polyline", { points: poly.map((p) => p.join(",")).join(" "), fill: "none",
                        stroke: "#00e5ff", "stroke-width": 2 * s });
      poly.forEach(([x, y], i) => add("circle", { cx: x, cy: y, r: (i ? 3 : 5) * s, fill: "#00e5ff" }));
    }
    if (drag) {
      const [x0, y0, x1, y1] = drag;
      add("ellipse", { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, rx: Math.abs(x1 - x0) / 2,
                       ry: Math.abs(y1 - y0) / 2, fill: "none", stroke: "#00e5ff", "stroke-width": 2 * s });
    }
  }

  svg.addEventListener("mousedown", (ev) => {
    if (model.get("tool") !== "ellipse" || ev.button !== 0) return;
    const [x, y] = toImage(ev);
    drag = [x, y, x, y];
  });
  svg.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const [x, y] = toImage(ev);
    drag = [drag[0], drag[1], x, y];
    draw();
  });
  svg.addEventListener("mouseup", () => {
    if (!drag) return;
    const [x0, y0, x1, y1] = drag;
    drag = null;
    draw();
    if (Math.abs(x1 - x0) > 2 && Math.abs(y1 - y0) > 2)
      model.send({ type: "ellipse", box: [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)] });
  });
  svg.addEventListener("click", (ev) => {
    const tool = model.get("tool");
    const [x, y] = toImage(ev);
    if (tool === "click") model.send({ type: "click", x, y, positive: !(ev.shiftKey || ev.altKey) });
    else if (tool === "point") model.send({ type: "point", x, y });
    else if (tool === "polygon") {
      const s = scale();
      if (poly.length >= 3 && Math.hypot(x - poly[0][0], y - poly[0][1]) < 8 * s) {
        model.send({ type: "polygon", points: poly });
        poly = [];
      } else poly.push([x, y]);
      draw();
    }
  });
  svg.addEventListener("dblclick", (ev) => {
    if (model.get("tool") === "polygon" && poly.length >= 3) {
      ev.preventDefault();
      model.send({ type: "polygon", points: poly });
      poly = [];
      draw();
    }
  });
  svg.addEventListener("contextmenu", (ev) => {
    if (model.get("tool") !== "click") return;
    ev.preventDefault();
    const [x, y] = toImage(ev);
    model.send({ type: "click", x, y, positive: false });
  });

  model.on("change:image", setImage);
  model.on("change:reset", () => { poly = []; drag = null; draw(); });
  setImage();

  return () => { if (url) URL.revokeObjectURL(url); };
}

export default { render };
