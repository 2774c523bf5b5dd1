// The flow canvas: nodes as absolutely positioned divs, wires as SVG paths, in one pan/zoom "world".
// Dragging (nodes, wires, rubber band, pan) runs here with no server round trip; the result goes back
// as one event when the pointer is released: move, wire, select, delete, edit, drop, copy, paste, ...
// The keyboard does the same: nodes are focusable groups (named by label and type, ports named too); focusing
// a node selects it, arrow keys move the selection (Shift: 20 px), Delete removes it, Enter edits it, and W starts
// a wire from the focused node's output (W again: the next output) that Enter on another focused node completes.
// What happens is said in a polite live region.
const PORT_GAP = 13;
const STEP = 1, BIG_STEP = 20;

function portY(n, i) {
  return n.h / 2 - ((n.outputs - 1) / 2) * PORT_GAP + PORT_GAP * i;
}

function wirePath(x1, y1, x2, y2) {
  const dx = Math.max(40, Math.abs(x2 - x1) / 2);
  return `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`;
}

export default {
  template: `
  <div class="sf-canvas" tabindex="0" @pointerdown="onDown" @dblclick="onDblClick" @wheel.prevent="onWheel"
       @keydown="onKey" @focusin="onFocusIn" @dragover.prevent @drop.prevent="onDrop" @contextmenu.prevent
       role="region" aria-label="Flow canvas" :aria-describedby="uid + '-keys'">
    <p :id="uid + '-keys'" class="sf-sr-only">Tab moves between nodes; arrow keys move the selected nodes (with
      Shift by 20 pixels); Delete removes them; Enter opens the focused node's properties; W starts a wire from the
      focused node's output, W again picks the next output, then Tab to the target node and press Enter; Escape
      cancels.</p>
    <div class="sf-sr-only" role="status" aria-live="polite">{{ announce }}</div>
    <div class="sf-world" :style="{transform: 'translate(' + view.x + 'px,' + view.y + 'px) scale(' + view.k + ')'}">
      <svg class="sf-wires" width="1" height="1">
        <path v-for="w in wires" :key="w.key" :d="w.d" :data-wire="w.key" class="sf-wire"
              :class="{'sf-selected': w.key === selectedWire, 'sf-active': activeSet.has(w.source)}"></path>
        <path v-if="tempWire" :d="tempWire" class="sf-wire sf-temp"></path>
      </svg>
      <div v-for="n in local" :key="n.id" class="sf-node" :data-id="n.id" :data-type="n.type"
           :data-x="n.x" :data-y="n.y" :title="n.problem ? n.label + ': ' + n.problem : n.label" tabindex="0" role="group"
           :aria-label="nodeName(n)" aria-roledescription="node"
           :class="{'sf-group': n.corner, 'sf-selected': selectedSet.has(n.id), 'sf-changed': n.changed, 'sf-disabled': n.disabled,
                    'sf-highlight': n.id === highlight, 'sf-invalid': n.invalid, 'sf-wire-source': wiring && wiring.source === n.id}"
           :style="{left: left(n) + 'px', top: top(n) + 'px', width: n.w + 'px',
                    height: n.h + 'px', background: n.color}">
        <div v-if="n.button" class="sf-button" data-role="button" title="inject now" role="button"
             :aria-label="'inject now: ' + n.label"></div>
        <i v-if="n.icon" class="material-icons sf-icon" :data-icon="n.icon" aria-hidden="true">{{ n.icon }}</i>
        <span class="sf-label" aria-hidden="true">{{ n.label }}</span>
        <div v-if="n.problem" class="sf-warning" role="img" :aria-label="'Invalid configuration: ' + n.problem"
             :title="'Invalid configuration: ' + n.problem"><i class="material-icons" aria-hidden="true">warning</i></div>
        <div v-if="n.inputs" class="sf-port sf-in" data-port="in" role="button" :aria-label="'input of ' + n.label"></div>
        <div v-for="i in n.outputs" :key="i" class="sf-port sf-out" :data-port="i - 1" role="button"
             :aria-label="'output ' + i + ' of ' + n.label" :style="{top: (portY(n, i - 1) - 5) + 'px'}"></div>
        <div v-if="n.status && n.status.text !== undefined" class="sf-status">
          <span class="sf-dot" :class="'sf-' + (n.status.fill || 'grey') + ' sf-' + (n.status.shape || 'dot')"></span>
          <span class="sf-status-text">{{ n.status.text }}</span>
        </div>
      </div>
    </div>
    <div v-if="band" class="sf-band" :style="{left: band.left + 'px', top: band.top + 'px',
         width: band.width + 'px', height: band.height + 'px'}"></div>
    <div class="sf-zoom">
      <button data-zoom="out" @pointerdown.stop @click="zoomBy(1 / 1.2)" aria-label="Zoom out" title="Zoom out">&minus;</button>
      <button data-zoom="reset" @pointerdown.stop @click="resetView" :aria-label="Math.round(view.k * 100) + '% zoom, reset'"
              title="Reset zoom">{{ Math.round(view.k * 100) }}%</button>
      <button data-zoom="in" @pointerdown.stop @click="zoomBy(1.2)" aria-label="Zoom in" title="Zoom in">+</button>
    </div>
  </div>`,
  emits: ["move", "wire", "selection", "delete", "edit", "node-drop", "button", "copy-nodes", "cut-nodes",
          "paste-nodes", "undo", "redo"],
  props: {
    nodes: { type: Array, default: () => [] },
    active: { type: Array, default: () => [] },
    highlight: { type: String, default: "" },
    tab: { type: String, default: "" },
  },
  data() {
    return { local: [], selected: [], selectedWire: "", view: { x: 0, y: 0, k: 1 }, band: null, tempWire: "",
             wiring: null, announce: "", keyMoves: {}, pointing: false, uid: "sfc" + Math.random().toString(36).slice(2, 9) };
  },
  computed: {
    byId() {
      const out = {};
      for (const n of this.local) out[n.id] = n;
      return out;
    },
    selectedSet() {
      return new Set(this.selected);
    },
    activeSet() {
      return new Set(this.active);
    },
    wires() {
      const out = [];
      const byId = this.byId;
      for (const n of this.local) {
        (n.wires || []).forEach((targets, port) => {
          for (const t of targets || []) {
            const m = byId[t];
            if (!m) continue;
            out.push({ key: `${n.id}:${port}:${t}`, source: n.id, d: this.pathBetween(n, port, m) });
          }
        });
      }
      return out;
    },
  },
  watch: {
    nodes: { handler(v) { this.load(v); }, immediate: true },
    tab() { this.selected = []; this.selectedWire = ""; this.wiring = null; this.resetView(); },
  },
  methods: {
    portY,
    nodeName(n) {
      return `${n.type} node: ${n.label}` + (n.problem ? ` (invalid configuration: ${n.problem})` : "");
    },
    left(n) { return n.corner ? n.x : n.x - n.w / 2; },
    top(n) { return n.corner ? n.y : n.y - n.h / 2; },
    patchNodes(patches) {
      const byId = this.byId;
      for (const p of patches) {
        if (!byId[p.id]) continue;
        const waiting = this.keyMoves[p.id] || 0;
        if (waiting > 0 && "x" in p) {
          // the echo of a keyboard move: the node has moved on since; keep where it is now
          this.keyMoves[p.id] = waiting - 1;
          const { x, y, ...rest } = p;
          Object.assign(byId[p.id], rest);
        } else {
          Object.assign(byId[p.id], p);
        }
      }
    },
    load(nodes) {
      this.keyMoves = {};
      this.local = nodes.map((n) => ({ ...n }));
      const known = new Set(this.local.map((n) => n.id));
      this.selected = this.selected.filter((id) => known.has(id));
    },
    pathBetween(n, port, m) {
      return wirePath(n.x + n.w / 2, n.y - n.h / 2 + portY(n, port), m.x - m.w / 2, m.y);
    },
    toWorld(e) {
      const r = this.$el.getBoundingClientRect();
      return { x: (e.clientX - r.left - this.view.x) / this.view.k, y: (e.clientY - r.top - this.view.y) / this.view.k };
    },
    setSelection(ids) {
      this.selected = ids;
      this.selectedWire = "";
      this.$emit("selection", { ids });
    },
    selectAll() { this.setSelection(this.local.map((n) => n.id)); },
    selectNodes(ids) {
      // after the props of a tab just shown are loaded: select the nodes drawn here, centre the first
      this.$nextTick(() => {
        const known = new Set(this.local.map((n) => n.id));
        const found = ids.filter((id) => known.has(id));
        this.setSelection(found);
        if (found.length) this.focusNode(found[0]);
      });
    },
    resetView() { this.view = { x: 0, y: 0, k: 1 }; },
    say(text) {
      // emptied first, so saying the same thing twice is read out twice
      this.announce = "";
      this.$nextTick(() => { this.announce = text; });
    },
    visibleArea() {
      // the part of the world in view: [left, top, right, bottom] (where a node added from the keyboard goes)
      const r = this.$el.getBoundingClientRect(), v = this.view;
      return [-v.x / v.k, -v.y / v.k, (r.width - v.x) / v.k, (r.height - v.y) / v.k].map(Math.round);
    },
    zoomBy(f, cx, cy) {
      const r = this.$el.getBoundingClientRect();
      cx = cx === undefined ? r.width / 2 : cx;
      cy = cy === undefined ? r.height / 2 : cy;
      const k = Math.min(4, Math.max(0.1, this.view.k * f));
      const wx = (cx - this.view.x) / this.view.k, wy = (cy - this.view.y) / this.view.k;
      this.view = { x: cx - wx * k, y: cy - wy * k, k };
    },
    focusNode(id) {
      const n = this.byId[id];
      if (!n) return;
      const r = this.$el.getBoundingClientRect();
      this.view = { x: r.width / 2 - n.x * this.view.k, y: r.height / 2 - n.y * this.view.k, k: this.view.k };
    },
    onWheel(e) {
      if (e.ctrlKey || e.metaKey) {
        const r = this.$el.getBoundingClientRect();
        this.zoomBy(e.deltaY < 0 ? 1.1 : 1 / 1.1, e.clientX - r.left, e.clientY - r.top);
      } else {
        this.view = { ...this.view, x: this.view.x - e.deltaX, y: this.view.y - e.deltaY };
      }
    },
    onDown(e) {
      this.pointing = true;
      setTimeout(() => { this.pointing = false; }, 0);
      if (!e.target.closest(".sf-node")) this.$el.focus({ preventScroll: true });
      const nodeEl = e.target.closest(".sf-node");
      const wireEl = e.target.closest("[data-wire]");
      if (e.button === 1 || (e.button === 0 && e.altKey && !nodeEl)) return this.startPan(e);
      if (e.button !== 0) return;
      if (nodeEl) {
        const id = nodeEl.dataset.id;
        if (e.target.dataset.role === "button") { e.stopPropagation(); this.$emit("button", { id }); return; }
        const port = e.target.dataset.port;
        if (port !== undefined && port !== "in") return this.startWire(e, id, Number(port));
        return this.startNodeDrag(e, id);
      }
      if (wireEl) {
        this.selected = [];
        this.selectedWire = wireEl.dataset.wire;
        this.$emit("selection", { ids: [], wire: this.selectedWire });
        return;
      }
      this.startBand(e);
    },
    track(move, up) {
      const onMove = (ev) => move(ev);
      const onUp = (ev) => {
        window.removeEventListener("pointermove", onMove);
        window.removeEventListener("pointerup", onUp);
        up(ev);
      };
      window.addEventListener("pointermove", onMove);
      window.addEventListener("pointerup", onUp);
    },
    startPan(e) {
      e.preventDefault();
      const start = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y };
      this.track((ev) => {
        this.view = { ...this.view, x: start.vx + ev.clientX - start.x, y: start.vy + ev.clientY - start.y };
      }, () => {});
    },
    startNodeDrag(e, id) {
      if (e.shiftKey || e.ctrlKey || e.metaKey) {
        const has = this.selected.includes(id);
        this.setSelection(has ? this.selected.filter((s) => s !== id) : [...this.selected, id]);
        if (has) return;
      } else if (!this.selected.includes(id)) {
        this.setSelection([id]);
      }
      const start = this.toWorld(e);
      const movingIds = new Set(this.selected);
      const moving = this.selected.map((sid) => this.byId[sid]).filter(Boolean).map((n) => ({ ...n }));
      // wires between two moving nodes ride along; wires to a resting node get a new path each move
      const touched = [], carried = [];
      for (const w of this.wires) {
        const [s, p, t] = w.key.split(":");
        if (!movingIds.has(s) && !movingIds.has(t)) continue;
        const el = this.$el.querySelector(`[data-wire="${w.key}"]`);
        if (movingIds.has(s) && movingIds.has(t)) carried.push(el);
        else touched.push({ src: { ...this.byId[s] }, p: Number(p), dst: { ...this.byId[t] }, el });
      }
      let dx = 0, dy = 0, ghost = null;
      const stats = window.__sfDragStats || (window.__sfDragStats = []);
      const shifted = (n) => (movingIds.has(n.id) ? { ...n, x: n.x + dx, y: n.y + dy } : n);
      this.track((ev) => {
        const t0 = performance.now();
        const p = this.toWorld(ev);
        dx = Math.round(p.x - start.x);
        dy = Math.round(p.y - start.y);
        if (!ghost && Math.abs(dx) + Math.abs(dy) < 3) return;
        if (!ghost) ghost = this.makeGhost(movingIds, carried);
        ghost.style.transform = `translate(${dx}px, ${dy}px)`;
        for (const w of touched) {
          if (w.el) w.el.setAttribute("d", this.pathBetween(shifted(w.src), w.p, shifted(w.dst)));
        }
        stats.push(performance.now() - t0);
      }, () => {
        if (!ghost) return;
        this.dropGhost(ghost, carried);
        const moves = moving.map((n) => ({ id: n.id, x: n.x + dx, y: n.y + dy }));
        for (const m of moves) { const n = this.byId[m.id]; if (n) { n.x = m.x; n.y = m.y; } }
        this.$emit("move", { moves });
      });
    },
    // While dragging, the moving nodes and the wires between them are copies in one layer that a
    // single transform moves (the originals are hidden): one style change per pointer move, not 500.
    makeGhost(movingIds, carried) {
      const world = this.$el.querySelector(".sf-world");
      const ghost = document.createElement("div");
      ghost.className = "sf-ghost";
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("class", "sf-wires");
      svg.setAttribute("width", "1");
      svg.setAttribute("height", "1");
      for (const el of carried) {
        if (!el) continue;
        const copy = el.cloneNode(false);
        copy.removeAttribute("data-wire");
        svg.appendChild(copy);
        el.classList.add("sf-carried");
      }
      ghost.appendChild(svg);
      for (const el of world.querySelectorAll(".sf-node.sf-selected")) {
        if (!movingIds.has(el.dataset.id)) continue;
        const copy = el.cloneNode(true);
        copy.removeAttribute("data-id");
        ghost.appendChild(copy);
      }
      world.appendChild(ghost);
      world.classList.add("sf-dragging");
      return ghost;
    },
    dropGhost(ghost, carried) {
      const world = this.$el.querySelector(".sf-world");
      world.classList.remove("sf-dragging");
      for (const el of carried) if (el) el.classList.remove("sf-carried");
      ghost.remove();
    },
    startWire(e, id, port) {
      e.stopPropagation();
      const n = this.byId[id];
      const x1 = n.x + n.w / 2, y1 = n.y - n.h / 2 + portY(n, port);
      this.track((ev) => {
        const p = this.toWorld(ev);
        this.tempWire = wirePath(x1, y1, p.x, p.y);
      }, (ev) => {
        this.tempWire = "";
        const under = document.elementFromPoint(ev.clientX, ev.clientY);
        const target = under && under.closest(".sf-node");
        if (!target || target.dataset.id === id) return;
        const m = this.byId[target.dataset.id];
        if (m && m.inputs) this.$emit("wire", { source: id, port, target: m.id });
      });
    },
    startBand(e) {
      const r = this.$el.getBoundingClientRect();
      const x0 = e.clientX - r.left, y0 = e.clientY - r.top;
      const additive = e.shiftKey;
      const before = additive ? [...this.selected] : [];
      this.track((ev) => {
        const x1 = ev.clientX - r.left, y1 = ev.clientY - r.top;
        this.band = { left: Math.min(x0, x1), top: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0) };
      }, () => {
        const b = this.band;
        this.band = null;
        if (!b || b.width + b.height < 4) { this.setSelection(before); return; }
        const k = this.view.k;
        const wx0 = (b.left - this.view.x) / k, wy0 = (b.top - this.view.y) / k;
        const wx1 = wx0 + b.width / k, wy1 = wy0 + b.height / k;
        const inside = this.local.filter((n) => this.left(n) + n.w >= wx0 && this.left(n) <= wx1
          && this.top(n) + n.h >= wy0 && this.top(n) <= wy1).map((n) => n.id);
        this.setSelection([...new Set([...before, ...inside])]);
      });
    },
    onDblClick(e) {
      const nodeEl = e.target.closest(".sf-node");
      if (nodeEl && e.target.dataset.role !== "button") this.$emit("edit", { id: nodeEl.dataset.id });
    },
    onDrop(e) {
      const type = e.dataTransfer.getData("text/x-sofiaflow-type");
      if (!type) return;
      const p = this.toWorld(e);
      this.$emit("node-drop", { type, x: Math.round(p.x), y: Math.round(p.y) });
    },
    // ----- keyboard -----------------------------------------------------------------------------------------
    focusedNode() {
      const el = document.activeElement;
      return el && this.$el.contains(el) && el.classList.contains("sf-node") ? el.dataset.id : "";
    },
    onFocusIn(e) {
      const el = e.target;
      if (this.pointing || !el.classList || !el.classList.contains("sf-node")) return;
      const id = el.dataset.id;
      if (this.wiring) {
        const n = this.byId[id];
        this.announce = id === this.wiring.source ? "the wire's source: Tab to another node"
          : `${this.nodeName(n)}: Enter connects it`;
        return;
      }
      if (!this.selected.includes(id) || this.selected.length > 1) this.setSelection([id]);
      this.keepInView(id);
    },
    keepInView(id) {
      // focusing scrolls even an overflow:hidden box: undo that, and pan instead when the node is out of view
      this.$el.scrollTop = 0;
      this.$el.scrollLeft = 0;
      const n = this.byId[id];
      if (!n) return;
      const r = this.$el.getBoundingClientRect();
      const x = n.x * this.view.k + this.view.x, y = n.y * this.view.k + this.view.y;
      if (x < 20 || y < 20 || x > r.width - 20 || y > r.height - 20) this.focusNode(id);
    },
    moveSelection(dx, dy) {
      const moves = this.selected.map((id) => this.byId[id]).filter(Boolean)
        .map((n) => ({ id: n.id, x: n.x + dx, y: n.y + dy }));
      if (!moves.length) return;
      for (const m of moves) {
        const n = this.byId[m.id];
        n.x = m.x; n.y = m.y;
        this.keyMoves[m.id] = (this.keyMoves[m.id] || 0) + 1;
      }
      this.$emit("move", { moves });
    },
    startKeyWire(id) {
      const n = this.byId[id];
      if (!n || !n.outputs) { this.announce = n ? `${this.nodeName(n)} has no output to wire from` : ""; return; }
      const port = this.wiring && this.wiring.source === id ? (this.wiring.port + 1) % n.outputs : 0;
      this.wiring = { source: id, port };
      this.announce = `Wiring from ${n.label} output ${port + 1}: Tab to the target node and press Enter; Escape cancels`;
    },
    finishKeyWire(id) {
      const { source, port } = this.wiring;
      const m = this.byId[id], n = this.byId[source];
      if (id === source) { this.announce = "Tab to another node to connect it"; return; }
      if (!m || !m.inputs) { this.announce = m ? `${this.nodeName(m)} has no input` : ""; return; }
      this.wiring = null;
      this.$emit("wire", { source, port, target: id });
      this.announce = `Wired ${n ? n.label : source} output ${port + 1} to ${m.label}`;
    },
    onKey(e) {
      this.pointing = false;  // a key (Tab) moves the focus now, not the pointer (input can outrun timers)
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      const focused = this.focusedNode();
      const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
      if (arrows[e.key] && !mod && this.selected.length) {
        e.preventDefault();
        const step = e.shiftKey ? BIG_STEP : STEP;
        this.moveSelection(arrows[e.key][0] * step, arrows[e.key][1] * step);
      } else if (key === "w" && !mod && focused) {
        e.preventDefault();
        this.startKeyWire(focused);
      } else if (e.key === "Enter" && focused) {
        e.preventDefault();
        if (this.wiring) this.finishKeyWire(focused);
        else this.$emit("edit", { id: focused });
      } else if (e.key === "Escape" && this.wiring) {
        this.wiring = null;
        this.announce = "Wiring cancelled";
      } else if (e.key === "Delete" || e.key === "Backspace") {
        e.preventDefault();
        const wires = this.selectedWire ? [this.selectedWire] : [];
        const gone = this.selected.length;
        this.$emit("delete", { ids: [...this.selected], wires });
        if (gone) this.announce = `Deleted ${gone} node${gone > 1 ? "s" : ""}`;
        this.selected = [];
        this.selectedWire = "";
        if (focused) this.$el.focus({ preventScroll: true });
      } else if (mod && key === "a") { e.preventDefault(); this.selectAll(); }
      else if (mod && key === "c") { this.$emit("copy-nodes", { ids: [...this.selected] }); }
      else if (mod && key === "x") { this.$emit("cut-nodes", { ids: [...this.selected] }); }
      else if (mod && key === "v") {
        const r = this.$el.getBoundingClientRect();
        this.$emit("paste-nodes", { x: Math.round((r.width / 2 - this.view.x) / this.view.k),
                              y: Math.round((r.height / 2 - this.view.y) / this.view.k) });
      }
      else if (mod && key === "z" && !e.shiftKey) { e.preventDefault(); this.$emit("undo", {}); }
      else if (mod && (key === "y" || (key === "z" && e.shiftKey))) { e.preventDefault(); this.$emit("redo", {}); }
      else if (e.key === "Escape") { this.setSelection([]); }
    },
  },
};
