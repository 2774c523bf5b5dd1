// The Node-RED API a JavaScript function node's body sees, for one V8 isolate per node.
// Python drives it with __sf.call(id, msg, ctx), __sf.fire(timerId, ctx) and __sf.drain();
// each returns a JSON array of operations (sends, logs, context writes, timers) for Python to apply.
var __sf = (function () {
  "use strict";
  var HELD = "__sofiaflowHeld";
  var NEED = { need: true };
  var ops = [];
  var values = {};      // "scope|store|key" -> value, prefetched by Python for this call
  var gotten = [];      // [mapKey, object, jsonAtGet]: objects read from context (written back if mutated)
  var needed = null;
  var pending = 0;      // async bodies not yet settled
  var timers = {};
  var nextTimer = 1;
  var nodeInfo = { id: "", name: "", path: "", outputCount: 1 };
  var body = null;
  var initBody = null;
  var finalBody = null;
  var done = [];        // ops of the calls completed in this callMany

  // ----- Buffer: enough of Node.js's Buffer to carry bytes in and out -------------------------
  function utf8Bytes(s) {
    var bin = unescape(encodeURIComponent(s));
    var out = new Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  var B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  class Buffer extends Uint8Array {
    static from(value, encoding) {
      if (typeof value === "string") {
        if (encoding === "hex") {
          var hex = [];
          for (var i = 0; i + 1 < value.length; i += 2) hex.push(parseInt(value.substr(i, 2), 16));
          return new Buffer(hex);
        }
        if (encoding === "base64") {
          var clean = value.replace(/[^A-Za-z0-9+/]/g, ""), bytes = [], bits = 0, acc = 0;
          for (var j = 0; j < clean.length; j++) {
            acc = (acc << 6) | B64.indexOf(clean[j]); bits += 6;
            if (bits >= 8) { bits -= 8; bytes.push((acc >> bits) & 255); }
          }
          return new Buffer(bytes);
        }
        return new Buffer(utf8Bytes(value));
      }
      if (value && value.type === "Buffer" && Array.isArray(value.data)) return new Buffer(value.data);
      return new Buffer(Array.from(value));
    }
    static isBuffer(v) { return v instanceof Buffer; }
    static alloc(n) { return new Buffer(n); }
    static concat(list) {
      var all = [];
      list.forEach(function (b) { for (var i = 0; i < b.length; i++) all.push(b[i]); });
      return new Buffer(all);
    }
    toString(encoding) {
      var i, s = "";
      if (encoding === "hex") {
        for (i = 0; i < this.length; i++) s += (this[i] < 16 ? "0" : "") + this[i].toString(16);
        return s;
      }
      if (encoding === "base64") {
        for (i = 0; i < this.length; i += 3) {
          var n = (this[i] << 16) | ((this[i + 1] || 0) << 8) | (this[i + 2] || 0);
          s += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] +
            (i + 1 < this.length ? B64[(n >> 6) & 63] : "=") + (i + 2 < this.length ? B64[n & 63] : "=");
        }
        return s;
      }
      for (i = 0; i < this.length; i++) s += String.fromCharCode(this[i]);
      try { return decodeURIComponent(escape(s)); } catch (e) { return s; }
    }
    toJSON() { return { type: "Buffer", data: Array.from(this) }; }
  }

  function revive(value) {
    if (value === null || typeof value !== "object") return value;
    if (value.type === "Buffer" && Array.isArray(value.data)) return new Buffer(value.data);
    var keys = Object.keys(value);
    for (var i = 0; i < keys.length; i++) value[keys[i]] = revive(value[keys[i]]);
    return value;
  }

  // ----- text of errors and log lines ------------------------------------------------------------
  function text(v) {
    if (typeof v === "string") return v;
    if (v instanceof Error) return v.toString();
    try { return JSON.stringify(v); } catch (e) { return String(v); }
  }
  function errorText(e) {
    if (e === NEED) return "context or env value " + JSON.stringify(needed) + " is not available after an await";
    if (e instanceof Error) {
      // as Node-RED's catch shows it: the error's toString(); a ReferenceError's message also
      // gets its name and place (Node-RED rewrites err.message, so the name appears twice)
      var message = e.message;
      if (e.name === "ReferenceError") {
        var m = /body:(\d+):(\d+)/.exec(String(e.stack));
        message = e.name + ": " + e.message + (m ? " (line " + (Number(m[1]) - 1) + ", col " + m[2] + ")" : "");
      }
      return e.name + ": " + message;
    }
    if (typeof e === "string") return e;
    return JSON.stringify(e);
  }

  // ----- context, flow, global, env --------------------------------------------------------------
  function lookup(slot) {
    if (!Object.prototype.hasOwnProperty.call(values, slot)) {
      needed = slot;
      throw NEED;
    }
    var v = values[slot];
    if (v !== null && typeof v === "object") gotten.push([slot, v, JSON.stringify(v)]);
    return v === null ? undefined : v;
  }
  function scope(name) {
    function split(store, cb) {
      return typeof store === "function" ? [undefined, store] : [store, cb];
    }
    return {
      get: function (key, store, cb) {
        var a = split(store, cb), result;
        result = Array.isArray(key)
          ? key.map(function (k) { return lookup(name + "|" + (a[0] || "") + "|" + k); })
          : lookup(name + "|" + (a[0] || "") + "|" + key);
        if (a[1]) { Array.isArray(key) ? a[1].apply(null, [null].concat(result)) : a[1](null, result); return; }
        return result;
      },
      set: function (key, value, store, cb) {
        var a = split(store, cb);
        var keys = Array.isArray(key) ? key : [key];
        var vals = Array.isArray(key) ? (Array.isArray(value) ? value : [value]) : [value];
        keys.forEach(function (k, i) {
          var v = vals[i];
          values[name + "|" + (a[0] || "") + "|" + k] = v === undefined ? null : v;
          ops.push(["set", name, a[0] || null, k, v === undefined ? null : v, v === undefined]);
        });
        if (a[1]) a[1](null);
      },
      incr: function (key, by, store) {
        // sofiaflow's atomic increment (ContextScope.incr): applied with the call's other context writes,
        // so a get later in the same call still sees the value from before
        if (by === undefined || by === null) by = 1;
        if (typeof by !== "number" || !isFinite(by)) throw new TypeError("incr: the step must be a finite number");
        if (typeof key !== "string") throw new TypeError("incr: the key must be a string");
        ops.push(["incr", name, store || null, key, by]);
      },
      keys: function (store, cb) {
        var a = split(store, cb);
        var prefix = name + "|" + (a[0] || "") + "|";
        var result = (lookup(prefix + "*keys") || []).slice();
        Object.keys(values).forEach(function (slot) {
          // keys set or deleted earlier in this call
          if (slot.indexOf(prefix) !== 0 || slot === prefix + "*keys" || slot.indexOf(".", prefix.length) >= 0) return;
          var k = slot.slice(prefix.length), at = result.indexOf(k);
          if (values[slot] === null && at >= 0) result.splice(at, 1);
          else if (values[slot] !== null && at < 0) result.push(k);
        });
        if (a[1]) { a[1](null, result); return; }
        return result;
      }
    };
  }
  var context = scope("node");
  var flowScope = scope("flow");
  var globalScope = scope("global");
  context.flow = flowScope;
  context.global = globalScope;
  var env = { get: function (name) { return lookup("env||" + name); } };

  function writeBack() {
    for (var i = 0; i < gotten.length; i++) {
      var g = gotten[i], now = JSON.stringify(g[1]);
      if (now !== g[2] && values[g[0]] === g[1]) {
        var parts = g[0].split("|");
        ops.push(["set", parts[0], parts[1] || null, parts.slice(2).join("|"), g[1], false]);
      }
    }
    gotten = [];
  }

  // ----- sending --------------------------------------------------------------------------------
  function normalise(msgs, msgid, clone) {
    if (msgs === null || msgs === undefined) return null;
    if (!Array.isArray(msgs)) msgs = [msgs];
    var out = [], count = 0;
    for (var m = 0; m < msgs.length; m++) {
      var port = msgs[m];
      if (port === null || port === undefined) { out.push(null); continue; }
      if (!Array.isArray(port)) port = [port];
      var list = [];
      for (var n = 0; n < port.length; n++) {
        var msg = port[n];
        if (msg === null || msg === undefined) continue;
        if (typeof msg === "object" && !Buffer.isBuffer(msg) && !Array.isArray(msg)) {
          if (clone && count === 0) msg = JSON.parse(JSON.stringify(msg));
          if (msgid !== undefined) msg._msgid = msgid;
          list.push(msg);
          count++;
        } else {
          var type = typeof msg;
          if (type === "object") type = Buffer.isBuffer(msg) ? "Buffer" : (Array.isArray(msg) ? "Array" : "Date");
          ops.push(["error", "Function tried to send a message of type " + type, null]);
        }
      }
      out.push(list);
    }
    return count > 0 ? out : null;
  }

  function makeNode(callId, msgid, msg) {
    return {
      id: nodeInfo.id, name: nodeInfo.name, path: nodeInfo.path, outputCount: nodeInfo.outputCount,
      log: function (v) { ops.push(["log", text(v)]); },
      debug: function (v) { ops.push(["log", text(v)]); },
      trace: function () {},
      warn: function (v) { ops.push(["warn", text(v)]); },
      error: function (v, msg) { ops.push(["error", errorText(v), msg === undefined ? null : msg]); },
      status: function (fill, shape, txt) {
        ops.push(["status", (fill !== null && typeof fill === "object") ? fill
          : { fill: fill, shape: shape, text: txt }]);
      },
      on: function (event) {
        if (event === "input") throw new Error("Cannot add listener to 'input' event within Function");
      },
      send: function (msgs, cloneMsg) {
        var out = normalise(msgs, msgid, cloneMsg !== false);
        if (out) ops.push(["send", callId, out]);
      },
      done: function (err) {
        // the message as the body left it: Node-RED reports that same object as completed
        ops.push(["done", callId, err === undefined || err === null ? null : errorText(err), msg === undefined ? null : msg]);
      }
    };
  }

  // ----- timers (armed and fired by Python, so each callback runs under the time limit) ----------
  function arm(fn, ms, args, repeat) {
    var id = nextTimer++;
    timers[id] = { fn: fn, args: args, repeat: repeat };
    ops.push(["timer", id, Math.max(Number(ms) || 0, 0), repeat]);
    return id;
  }
  function disarm(id) {
    if (timers[id]) { delete timers[id]; ops.push(["clear", id]); }
  }
  var sandbox = {
    setTimeout: function (fn, ms) { return arm(fn, ms, Array.prototype.slice.call(arguments, 2), false); },
    setInterval: function (fn, ms) { return arm(fn, ms, Array.prototype.slice.call(arguments, 2), true); },
    clearTimeout: disarm,
    clearInterval: disarm
  };

  var RED = {
    util: {
      cloneMessage: function (m) { return revive(JSON.parse(JSON.stringify(m))); },
      generateId: function () {
        var s = "";
        for (var i = 0; i < 16; i++) s += Math.floor(Math.random() * 16).toString(16);
        return s;
      },
      getMessageProperty: function (msg, path) {
        return String(path).replace(/^msg\./, "").split(".").reduce(function (o, k) {
          return o === undefined || o === null ? undefined : o[k];
        }, msg);
      },
      setMessageProperty: function (msg, path, value) {
        var parts = String(path).replace(/^msg\./, "").split("."), o = msg;
        for (var i = 0; i < parts.length - 1; i++) {
          if (o[parts[i]] === undefined || o[parts[i]] === null) o[parts[i]] = {};
          o = o[parts[i]];
        }
        o[parts[parts.length - 1]] = value;
      },
      getSetting: function (node, name) { return env.get(name); }
    }
  };
  var console = {
    log: function (v) { ops.push(["log", text(v)]); },
    info: function (v) { ops.push(["log", text(v)]); },
    warn: function (v) { ops.push(["warn", text(v)]); },
    error: function (v) { ops.push(["warn", text(v)]); }
  };

  // ----- entry points for Python -----------------------------------------------------------------
  function begin(ctx) {
    if (ctx !== "same") values = ctx || {};  // "same": go on with the values the previous call left
    needed = null;
    gotten = [];
  }
  function end() {
    writeBack();
    var out = ops;
    ops = [];
    if (needed !== null) return JSON.stringify([["need", needed]]);
    out.push(["pending", pending]);
    return JSON.stringify(out);
  }
  function settle(callId, result, msgid, msg, watched) {
    if (result && typeof result.then === "function") {
      pending++;
      result.then(function (v) {
        pending--;
        var out = normalise(v, msgid, false);
        if (watched) ops.push(["state", callId, msg]);
        ops.push(["return", callId, out]);
      }, function (e) {
        pending--;
        ops.push(["throw", callId, errorText(e)]);
      });
      return;
    }
    var sent = normalise(result, msgid, false);
    if (watched) ops.push(["state", callId, msg]);
    ops.push(["return", callId, sent]);
  }

  return {
    Buffer: Buffer,
    RED: RED,
    console: console,
    context: context,
    flow: flowScope,
    global: globalScope,
    env: env,
    timers: sandbox,
    setup: function (info) { nodeInfo = info; },
    compile: function (kind, fn) {
      if (kind === "body") body = fn; else if (kind === "initialize") initBody = fn; else finalBody = fn;
    },
    callIn: function () {
      var a = JSON.parse(__sfIn);
      return this.call(a[0], a[1], a[2], a[3], a[4]);
    },
    // several calls in one evaluation (__sfIn: a JSON array of callIn's arrays); stops after `budget` ms,
    // at a call that needs a context value or leaves promises pending. If the evaluation is terminated,
    // takeDone(0) answers for the calls that completed.
    callMany: function (budget) {
      var all = JSON.parse(__sfIn), started = Date.now(), stop = 0;
      done = [];
      for (var i = 0; i < all.length; i++) {
        if (i > 0 && Date.now() - started > budget) break;
        var a = all[i], out = this.call(a[0], a[1], a[2], a[3], a[4]);
        done.push(out);
        if (out.indexOf('[["need"') === 0) { stop = 1; break; }
        if (out.lastIndexOf('["pending",0]]') !== out.length - 14) { stop = 2; break; }
      }
      return this.takeDone(stop);
    },
    // [count, stop (0: go on, 1: a context value is needed, 2: promises pending), [ops of each call]]
    takeDone: function (stop) {
      var text = "[" + done.length + "," + stop + ",[" + done.join(",") + "]]";
      done = [];
      return text;
    },
    // watched: a complete node follows this node, so report the message's final state
    call: function (callId, msg, ctx, hasBuffers, watched) {
      begin(ctx);
      if (hasBuffers) revive(msg);
      var msgid = msg._msgid;
      try {
        settle(callId, body(msg, makeNode(callId, msgid, msg)), msgid, msg, watched);
      } catch (e) {
        if (e === NEED || needed !== null) return end();
        ops.push(["throw", callId, errorText(e)]);
      }
      return end();
    },
    init: function (ctx) {
      begin(ctx);
      if (initBody) {
        try {
          var node = makeNode(0, undefined);
          var r = initBody(node);
          if (r && typeof r.then === "function") {
            r.then(null, function (e) { ops.push(["error", "initialize: " + errorText(e), null]); });
          }
        } catch (e) {
          if (e === NEED || needed !== null) return end();
          ops.push(["error", "initialize: " + errorText(e), null]);
        }
      }
      return end();
    },
    finish: function (ctx) {
      begin(ctx);
      if (finalBody) {
        try {
          var node = makeNode(0, undefined);
          node.send = function () { ops.push(["error", "Cannot send from close function", null]); };
          finalBody(node);
        } catch (e) {
          if (e === NEED || needed !== null) return end();
          ops.push(["error", "finalize: " + errorText(e), null]);
        }
      }
      return end();
    },
    fire: function (id, ctx) {
      begin(ctx);
      var t = timers[id];
      if (t) {
        if (!t.repeat) delete timers[id];
        try {
          t.fn.apply(null, t.args);
        } catch (e) {
          if (e === NEED || needed !== null) { timers[id] = t; return end(); }
          ops.push(["error", errorText(e), {}]);
        }
      }
      return end();
    },
    drain: function () { needed = null; return end(); },
    clearAll: function () { timers = {}; }
  };
})();
var Buffer = __sf.Buffer, RED = __sf.RED, console = __sf.console, context = __sf.context;
var flow = __sf.flow, global = __sf.global, env = __sf.env;
var setTimeout = __sf.timers.setTimeout, setInterval = __sf.timers.setInterval;
var clearTimeout = __sf.timers.clearTimeout, clearInterval = __sf.timers.clearInterval;
