/* ffsystemd: makes Xpra's HTML5 client a view of one Firefox that is the whole tab.
   Loaded (like client_shim.js, from our own path under the session's policy) before the
   client's scripts; it changes their prototypes on DOMContentLoaded, before the client starts.
   1. A window that fills the screen (maximized or fullscreen: Firefox's main window) has no
      title bar and no border: it covers the frame to the pixel. A window that does not fill it
      (a dialog, a popup) keeps Xpra's title bar, so it can still be moved and closed.
   2. Text pasted into the frame (Ctrl+V, Shift+Insert) reaches the X clipboard before the key
      that pastes it: the browser's paste event carries the text without any permission, and
      the paste key's packets wait for it; the client would only ask
      navigator.clipboard.readText(), which needs the clipboard-read permission, resolves
      after its key press has already gone to Firefox, and is missing outside secure contexts.
      Text travels as UTF-8 both ways (the client garbled non-ASCII text).
   3. Keys repeat where the user holds them, in the browser: the client asks the server not to
      keep keys pressed in the X server (hello capability keyboard_sync=false: every press is
      pressed and released at once, modifiers excepted). With the server's default, a key stays
      down in Xvfb until its release packet arrives, and Xvfb repeats it after 500 ms: on a
      loaded machine one slow packet typed "Fiiiiiiii" (measured).
   4. A hidden tab does not resize Firefox to nothing, and a tab activated again hands the
      keyboard back to the client's key catcher. */
(function () {
  "use strict";

  function offsets(win, decorated) {
    var div = window.jQuery(win.div);
    function px(side) {
      return parseInt(div.css("border-" + side + "-width"), 10) || 0;
    }
    win.leftoffset = px("left");
    win.rightoffset = px("right");
    win.bottomoffset = px("bottom");
    win.topoffset = px("top");
    if (decorated && win.d_header) {
      win.topoffset += parseInt(window.jQuery(win.d_header).css("height"), 10) || 0;
    }
  }

  /* Title bar and border on (a free window) or off (a window that fills the screen). */
  function decorate(win, decorated) {
    if (!win.d_header) {
      return;  /* no title bar was built (popups, menus, tooltips, override-redirect) */
    }
    var div = window.jQuery(win.div);
    if (decorated) {
      window.jQuery(win.d_header).show();
      div.removeClass("undecorated").addClass("window border");
    } else {
      window.jQuery(win.d_header).hide();
      div.removeClass("border").addClass("undecorated");
    }
    offsets(win, decorated);
  }

  function patchWindows(proto) {
    var fillScreen = proto.fill_screen;
    proto.fill_screen = function () {
      decorate(this, false);
      return fillScreen.apply(this, arguments);
    };
    var restoreGeometry = proto.restore_geometry;
    proto.restore_geometry = function () {
      if (this.saved_geometry !== null) {
        decorate(this, this.decorations);
      }
      return restoreGeometry.apply(this, arguments);
    };
    /* The client's own switch (server metadata "decorations", fullscreen) must not put a title
       bar back on a window that fills the screen. */
    proto._set_decorated = function (decorated) {
      decorate(this, Boolean(decorated) && !this.maximized && !this.fullscreen);
    };
  }

  /* Key packets held back while a paste is under way: the paste key's own press and release
     wait for the paste event (so the token goes first), at most PASTE_WAIT_MS. */
  var PASTE_WAIT_MS = 250;
  var heldKeys = null;
  var holdGeneration = 0;
  var originalSend = null;

  function isPasteKey(event) {
    var key = String(event.key || "").toLowerCase();
    return (key === "v" && (event.ctrlKey || event.metaKey)) || (key === "insert" && event.shiftKey);
  }

  function releaseKeys(client) {
    var packets = heldKeys;
    heldKeys = null;
    (packets || []).forEach(function (args) {
      originalSend.apply(client, args);
    });
  }

  function onKeyDown(event) {
    var client = window.client;
    if (!client || !client.clipboard_enabled || !originalSend || !isPasteKey(event)) {
      return;
    }
    if (heldKeys === null) {
      heldKeys = [];
    }
    var generation = ++holdGeneration;
    window.setTimeout(function () {
      if (generation === holdGeneration) {
        releaseKeys(client);
      }
    }, PASTE_WAIT_MS);
  }

  function textOf(event) {
    var data = (event.originalEvent || event).clipboardData || null;
    if (!data || typeof data.getData !== "function") {
      return null;
    }
    var text = data.getData("text/plain");
    return typeof text === "string" ? text : null;
  }

  /* Capture phase on the document: runs before the client's own handler on its pasteboard,
     and synchronously inside the key press, whose packet the client sends on a timer. */
  function onPaste(event) {
    var client = window.client;
    var text = textOf(event);
    if (!client || text === null || !client.clipboard_enabled) {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    var data = unescape(encodeURIComponent(text));
    client.clipboard_buffer = data;
    client.send_clipboard_token(data);
    holdGeneration++;
    releaseKeys(client);
  }

  /* When Firefox pastes, the server asks for the text the client announced with its last
     token: answer with exactly that (UTF-8, as the token carried it). The client would read
     the browser's clipboard again and send that text without encoding it (non-ASCII text
     reached Firefox broken, measured) or, without the read permission, nothing. */
  function answerClipboardRequest(packet, ctx) {
    var requestId = packet[1];
    var selection = packet[2];
    var text = selection === "CLIPBOARD" ? ctx.clipboard_buffer || "" : "";
    ctx.send_clipboard_string(requestId, selection, text, "UTF8_STRING");
  }

  function decodeUtf8(data) {
    try {
      return decodeURIComponent(escape(data));
    } catch (e) {
      return data;
    }
  }

  /* Text Firefox copied (the server's token carries it, as UTF-8 bytes): into the browser's
     clipboard as the text it is; the client would write the UTF-8 bytes as if they were
     characters (non-ASCII text arrived garbled). Anything but text: the client's own way. */
  function clipboardTokenHandler(original) {
    return function (packet, ctx) {
      var target = packet[3];
      var dtype = String(packet[4] || "").toLowerCase();
      var isText = dtype.indexOf("text") >= 0 || dtype.indexOf("string") >= 0;
      if (!ctx.clipboard_enabled || packet.length < 8 || !isText ||
          ctx.clipboard_targets.indexOf(target) < 0) {
        return original.apply(this, arguments);
      }
      var selection = packet[1];
      var wire = packet[7];
      ctx.clipboard_server_buffers[selection] = [target, packet[4], packet[5], packet[6], wire];
      var data = wire;
      try {
        data = window.Utilities.Uint8ToString(wire);
      } catch (e) {
        data = wire;
      }
      if (ctx.clipboard_buffer === data) {
        return undefined;
      }
      ctx.clipboard_datatype = packet[4];
      ctx.clipboard_buffer = data;
      ctx.clipboard_pending = true;
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(decodeUtf8(data)).then(function () {
          ctx.clipboard_pending = false;
        }, function () {});
      }
      return undefined;
    };
  }

  function patchClient(proto) {
    /* A hidden tab is not a screen of size 0 (JupyterLab's hiddenMode "display" hides the
       frame with display: none; its default keeps the size): Firefox keeps its size instead
       of being shrunk and grown back at every tab switch. */
    var screenResized = proto._screen_resized;
    proto._screen_resized = function () {
      if (!this.container || this.container.clientWidth === 0 || this.container.clientHeight === 0) {
        return undefined;
      }
      return screenResized.apply(this, arguments);
    };
    originalSend = proto.send;
    proto.send = function (packet) {
      if (heldKeys !== null && packet && packet[0] === "key-action") {
        heldKeys.push(Array.prototype.slice.call(arguments));
        return undefined;
      }
      return originalSend.apply(this, arguments);
    };
    proto._process_clipboard_request = answerClipboardRequest;
    proto._process_clipboard_token = clipboardTokenHandler(proto._process_clipboard_token);
    var makeHello = proto._make_hello;
    proto._make_hello = function () {
      var result = makeHello.apply(this, arguments);
      this._update_capabilities({ keyboard_sync: false });
      return result;
    };
  }

  /* The frame got the keyboard back (its tab was activated): the client's key catcher takes it
     again (the client's own attempt fails while the frame is hidden). */
  window.addEventListener("focus", function () {
    var pasteboard = document.getElementById("pasteboard");
    if (window.client && window.client.capture_keyboard && pasteboard && document.activeElement !== pasteboard) {
      pasteboard.focus();
    }
  });
  document.addEventListener("keydown", onKeyDown, true);
  document.addEventListener("paste", onPaste, true);
  document.addEventListener("DOMContentLoaded", function () {
    var proto = window.XpraWindow && window.XpraWindow.prototype;
    if (proto && window.jQuery && typeof proto.fill_screen === "function") {
      patchWindows(proto);
    }
    var client = window.XpraClient && window.XpraClient.prototype;
    if (client && typeof client._make_hello === "function" && typeof client._update_capabilities === "function") {
      patchClient(client);
    }
  });
})();
