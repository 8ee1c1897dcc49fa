/* ffsystemd: loaded before Xpra's client, in the opaque origin its page runs in.
   1. `new Worker(...)` throws in an opaque origin, and the client's websocket-in-a-worker
      probe does not catch that: this stand-in answers the probe "no", so the client uses its
      main-thread protocol.
   2. The client inserts window titles and notification texts as HTML; a page in Firefox
      chooses them. The policy already keeps any script from running; here they are shown as
      the text they are, so markup cannot draw, link or navigate either. */
(function () {
  "use strict";
  function NoWorker() {
    this.listeners = [];
  }
  NoWorker.prototype.addEventListener = function (type, listener) {
    if (type === "message") {
      this.listeners.push(listener);
    }
  };
  NoWorker.prototype.removeEventListener = function () {};
  NoWorker.prototype.terminate = function () {};
  NoWorker.prototype.postMessage = function () {
    var self = this;
    window.setTimeout(function () {
      self.listeners.forEach(function (listener) {
        listener.call(self, { data: { result: false } });
      });
    }, 0);
  };
  Object.defineProperty(window, "Worker", { value: NoWorker, writable: false, configurable: false });

  function escapeHtml(value) {
    return String(value === undefined || value === null ? "" : value)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }
  function decodeTitle(raw) {
    try {
      return decodeURIComponent(escape(String(raw)));
    } catch (e) {
      return String(raw);
    }
  }
  /* Notifications.js assigns these two on document ready: wrap them as they arrive. */
  function wrapOnAssign(name, wrap) {
    var current;
    Object.defineProperty(window, name, {
      configurable: false,
      get: function () { return current; },
      set: function (fn) { current = typeof fn === "function" ? wrap(fn) : fn; }
    });
  }
  wrapOnAssign("doNotification", function (original) {
    return function (type, nid, title, message) {
      var args = Array.prototype.slice.call(arguments);
      args[0] = escapeHtml(type);
      args[1] = escapeHtml(nid);
      args[2] = escapeHtml(title);
      args[3] = escapeHtml(message);
      return original.apply(this, args);
    };
  });
  wrapOnAssign("_notification_button", function (original) {
    return function (nid, actionId, actionLabel) {
      var args = Array.prototype.slice.call(arguments);
      args[1] = escapeHtml(actionId);
      args[2] = escapeHtml(actionLabel);
      return original.apply(this, args);
    };
  });
  /* Window titles: XpraWindow exists once the client's scripts ran, before any window (this
     listener was added before jQuery's, so it runs before the client starts). Two paths put a
     title into the page: updates (set_metadata_safe) and a new window's title bar, which the
     constructor builds from the title as HTML; it is built without the title, then given it. */
  document.addEventListener("DOMContentLoaded", function () {
    var Original = window.XpraWindow;
    var proto = Original && Original.prototype;
    if (!proto || typeof proto.set_metadata_safe !== "function" || !window.jQuery) {
      return;
    }
    function isMetadata(value) {
      return value !== null && typeof value === "object" && !Array.isArray(value) &&
        Object.prototype.hasOwnProperty.call(value, "title");
    }
    function TextTitleWindow() {
      var args = Array.prototype.slice.call(arguments);
      var index = -1;
      for (var i = 0; i < args.length && index < 0; i++) {
        if (isMetadata(args[i])) {
          index = i;
        }
      }
      if (index < 0) {
        return Original.apply(this, args);
      }
      var title = args[index].title;
      var rest = {};
      Object.keys(args[index]).forEach(function (key) {
        if (key !== "title") {
          rest[key] = args[index][key];
        }
      });
      args[index] = rest;
      Original.apply(this, args);
      this.metadata.title = title;
      this.set_metadata_safe({ title: title });
    }
    TextTitleWindow.prototype = proto;
    window.XpraWindow = TextTitleWindow;
    var original = proto.set_metadata_safe;
    proto.set_metadata_safe = function (metadata) {
      if (!metadata || !("title" in metadata)) {
        return original.apply(this, arguments);
      }
      var rest = {};
      Object.keys(metadata).forEach(function (key) {
        if (key !== "title") {
          rest[key] = metadata[key];
        }
      });
      this.title = metadata.title;
      var text = decodeTitle(this.title);
      window.jQuery("#title" + this.wid).text(text);
      var short = text.length > 30 ? text.slice(0, 27) + "..." : text;
      window.jQuery("#windowlistitemtitle" + this.wid).text(short);
      return original.call(this, rest);
    };
  });
})();
