// labkit LabelerKeys: one keyboard for the whole Labeler, wherever the focus is inside it.
//
// How keys travel. JupyterLab runs its shortcuts from a keydown listener on `document`
// in the bubbling phase (lab.start({bubblingKeydown: true})): a key that a widget stops
// never reaches it. jupyter-bbox-widget's wrapper is focusable (tabindex 0), takes the
// focus when a box is drawn, and its keydown handler stops every key; so after drawing
// a box the keys went nowhere, not to JupyterLab, not to a bubbling listener on the
// Labeler. Hence:
// 1. the Labeler's root listens in the *capture* phase, which runs before any widget
//    inside it: its keys go to the kernel, and every key without Ctrl/Alt/Meta stops
//    there, so no notebook command (m, a, dd, arrows...) fires while labeling. Ctrl+S,
//    Shift+Enter (run the cell) and Tab (move the focus on) still work as usual;
// 2. a mouse press in the Labeler (outside text fields and lists) keeps the focus on the
//    root, which is never hidden: switching tool (the box widget or the canvas hides),
//    class or image cannot lose it;
// 3. if the focus is lost anyway (a focused part was hidden or removed), it comes back
//    to the root, unless the person pressed somewhere outside the Labeler.
// 4. with `autofocus` (the review mode, where the first key is Enter on what is shown),
//    the root takes the focus when it appears and keeps it for a few seconds against the
//    notebook's own focusing after the cell ran, unless the person presses elsewhere or
//    types in a text field.
const TEXT_FIELDS = "input, textarea, [contenteditable]";
const OWN_FOCUS = "input, textarea, select, option, [contenteditable], .jupyter-widget-tagsinput";
const REPEATABLE = new Set(["z", "y"]);  // holding z undoes step by step; a held Enter accepts once

function render({ model, el }) {
  el.classList.add("labkit-keys");
  let detach = () => {};
  let tries = 0;

  const attach = () => {
    const root = el.closest("." + model.get("root_class"));
    if (!root) {
      if (tries++ < 200) setTimeout(attach, 50);  // the view is rendered before it is placed
      return;
    }
    if (root.dataset.labkitKeys) return;  // one listener per Labeler on the page
    root.dataset.labkitKeys = "1";
    root.tabIndex = 0;
    let pressedOutside = -Infinity;

    const onKeydown = (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;  // Ctrl+S, Ctrl+Enter...: JupyterLab's
      if (ev.target.closest(TEXT_FIELDS)) return;         // typing
      if (ev.key === "Tab" || (ev.shiftKey && ev.key === "Enter")) return;
      if (model.get("shortcut_keys").includes(ev.key)) {
        ev.preventDefault();
        if (!ev.repeat || REPEATABLE.has(ev.key)) model.send({ type: "key", key: ev.key });
      }
      ev.stopPropagation();
    };
    const onMousedown = (ev) => {
      if (ev.target.closest(OWN_FOCUS)) return;
      ev.preventDefault();  // the press does not hand the focus to a part that may hide or eat keys
      root.focus({ preventScroll: true });
    };
    const onDocPointer = (ev) => {
      if (!root.contains(ev.target)) pressedOutside = performance.now();
    };
    const onFocusout = (ev) => {
      if (ev.relatedTarget) return;  // moved on purpose (Tab, a click on a text field...)
      setTimeout(() => {
        const active = document.activeElement;
        const lost = !active || active === document.body;
        if (lost && root.isConnected && performance.now() - pressedOutside > 1000) {
          root.focus({ preventScroll: true });
        }
      }, 0);
    };
    if (model.get("autofocus")) {
      const until = performance.now() + 4000;
      const claim = () => {
        const active = document.activeElement;
        const typing = active && active !== root && active.closest(TEXT_FIELDS);
        if (root.isConnected && !root.contains(active) && !typing && performance.now() - pressedOutside > 1000) {
          root.focus({ preventScroll: true });
        }
        if (performance.now() < until) setTimeout(claim, 100);
      };
      claim();
    }
    root.addEventListener("keydown", onKeydown, true);
    root.addEventListener("mousedown", onMousedown, true);
    root.addEventListener("focusout", onFocusout);
    document.addEventListener("pointerdown", onDocPointer, true);
    detach = () => {
      root.removeEventListener("keydown", onKeydown, true);
      root.removeEventListener("mousedown", onMousedown, true);
      root.removeEventListener("focusout", onFocusout);
      document.removeEventListener("pointerdown", onDocPointer, true);
      delete root.dataset.labkitKeys;
    };
  };
  attach();
  return () => detach();
}

export default { render };
