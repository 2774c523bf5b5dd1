// The flow canvas: nodes as absolutely positioned divs, wires as SVG paths, in one pan/zoom "world".
// Dragging (nodes, wires, rubber band, pan) runs here with no server round trip; the result goes back
// as one event when the pointer is released: move, wire, select, delete, edit, drop, copy, paste, ...
const PORT_GAP = 13;

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
       @keydown="onKey" @dragover.prevent @drop.prevent="onDrop" @contextmenu.prevent>
    <div class="sf-world" :style="{transform: 'translate(' + view.x + 'px,' + view.y + 'px) scale(' + view.k + ')'}">
      <svg class="sf-wires" width="1" height="1">
        <path v-for="w in wires" :key="w.key" :d="w.d" :data-wire="w.key" class="sf-wire"
              :class="{'sf-selected': w.key === selectedWire, 'sf-active': activeSet.has(w.source)}"></path>
        <path v-if="tempWire" :d="tempWire" class="sf-wire sf-temp"></path>
      </svg>
      <div v-for="n in local" :key="n.id" class="sf-node" :data-id="n.id" :data-type="n.type"
           :data-x="n.x" :data-y="n.y" :title="n.label"
           :class="{'sf-group': n.corner, 'sf-selected': selectedSet.has(n.id), 'sf-changed': n.changed, 'sf-disabled': n.disabled,
                    'sf-highlight': n.id === highlight, 'sf-invalid': n.invalid}"
           :style="{left: left(n) + 'px', top: top(n) + 'px', width: n.w + 'px',
                    height: n.h + 'px', background: n.color}">
        <div v-if="n.button" class="sf-button" data-role="button" title="inject now"></div>
        <span class="sf-label">{{ n.label }}</span>
        <div v-if="n.inputs" class="sf-port sf-in" data-port="in"></div>
        <div v-for="i in n.outputs" :key="i" class="sf-port sf-out" :data-port="i - 1"
             :style="{top: (portY(n, i - 1) - 5) + 'px'}"></div>
        <div v-if="n.status && n.status.text !== undefined" class="sf-status">
          <span class="sf-dot" :class="'sf-' + (n.status.fill || 'grey') + ' sf-' + (n.status.shape || 'dot')"></span>
          <span class="sf-status-text">{{ n.status.text }}</span>
        </div>
      </div>
    </div>
    <div v-if="band" class="sf-band" :style="{left: band.left + 'px', top: band.top + 'px',
         width: band.width + 'px', height: band.height + 'px'}"></div>
    <div class="sf-zoom">
      <button data-zoom="out" @pointerdown.stop @click="zoomBy(1 / 1.2)">&minus;</button>
      <button data-zoom="reset" @pointerdown.stop @click="resetView">{{ Math.round(view.k * 100) }}%</button>
      <button data-zoom="in" @pointerdown.stop @click="zoomBy(1.2)">+</button>
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
    return { local: [], selected: [], selectedWire: "", view: { x: 0, y: 0, k: 1 }, band: null, tempWire: "" };
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
    tab() { this.selected = []; this.selectedWire = ""; this.resetView(); },
  },
  methods: {
    portY,
    left(n) { return n.corner ? n.x : n.x - n.w / 2; },
    top(n) { return n.corner ? n.y : n.y - n.h / 2; },
    patchNodes(patches) {
      const byId = this.byId;
      for (const p of patches) if (byId[p.id]) Object.assign(byId[p.id], p);
    },
    load(nodes) {
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
      this.$el.focus({ preventScroll: true });
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
    onKey(e) {
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (e.key === "Delete" || e.key === "Backspace") {
        e.preventDefault();
        const wires = this.selectedWire ? [this.selectedWire] : [];
        this.$emit("delete", { ids: [...this.selected], wires });
        this.selected = [];
        this.selectedWire = "";
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
