/* ffsystemd: makes Xpra's HTML5 client a view of one Firefox that is the whole tab.
   Loaded (like client_shim.js, from our own path under the session's policy) before the
   client's scripts; it changes their prototypes on DOMContentLoaded, before the client starts.
   1. A window that fills the screen (maximized or fullscreen: Firefox's main window) has no
      title bar and no border: it covers the frame to the pixel. A window that does not fill it
      (a dialog, a popup) keeps Xpra's title bar, so it can still be moved and closed.
   2. Text pasted into the frame (Ctrl+V, Shift+Insert) reaches the X clipboard before the key
      that pastes it: the browser's paste event carries the text without any permission; the
      client would only ask navigator.clipboard.readText(), which needs the clipboard-read
      permission, resolves after its key press has already gone to Firefox, and is missing
      outside secure contexts. */
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
  }

  document.addEventListener("paste", onPaste, true);
  document.addEventListener("DOMContentLoaded", function () {
    var proto = window.XpraWindow && window.XpraWindow.prototype;
    if (proto && window.jQuery && typeof proto.fill_screen === "function") {
      patchWindows(proto);
    }
  });
})();
