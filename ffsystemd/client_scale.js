/* ffsystemd: a HiDPI browser gets a sharp picture. Loaded (like client_view.js, from our own path
   under the session's policy) before the client's scripts, after client_view.js; it changes their
   prototypes on DOMContentLoaded, before the client starts.

   Xpra 3.1.3's HTML5 client works in CSS pixels: it asks for an X screen of the frame's CSS
   size, reports 96 DPI and draws each window's canvas at its CSS size, so a browser with a
   device pixel ratio of 2 scales the picture up (soft). With a ratio r = pixelRatio(...) > 1:
   1. the client's screen element (#screen) is laid out at the X size (CSS size x r, rounded)
      and drawn scaled by 1/r (a CSS transform): every size and position the client computes,
      sends and receives (desktop size, windows, dialogs, popups, canvases) is in X pixels, and
      one X pixel is one device pixel on the user's screen;
   2. the DPI the client reports is 96 x r (hello and every resize): Xpra's server puts it in
      XSETTINGS (Xft/DPI), where Firefox reads its scale, also while it runs (a pooled session's
      Firefox rescales when the tab's client connects; measured with Firefox 153: 192 -> 2,
      144 -> 1.5, 120 -> 1.25). This does not go through Xpra's resize-time DPI handling;
   3. pointer positions are the CSS position times r, so a click lands where the user clicked,
      and a dialog dragged or resized by its title bar follows the pointer.
   r = 1 (every browser with a device pixel ratio of 1) changes nothing of the above.
   pixelRatio and screenPixels are the rule the launcher tab mirrors to pre-size the X screen;
   this file also runs under Node (module.exports) for the fast tests. */
(function (root) {
  "use strict";

  var MAX_RATIO = 3;

  /* The ratio of X pixels to CSS pixels for a frame of cssWidth x cssHeight CSS px in a browser
     with this devicePixelRatio, when the X screen can be at most maxWidth x maxHeight (null or
     0: not known yet). Pure. It is 1 for a ratio of at most 1.01 (no HiDPI; browsers zoomed
     out keep today's behaviour) and never below 1; otherwise devicePixelRatio, at most
     MAX_RATIO, and at most what makes the X size (screenPixels) fit the X screen. */
  function pixelRatio(devicePixelRatio, cssWidth, cssHeight, maxWidth, maxHeight) {
    var ratio = Number(devicePixelRatio);
    if (!(ratio > 1.01) || !isFinite(ratio)) {
      return 1;
    }
    ratio = Math.min(ratio, MAX_RATIO);
    if (maxWidth > 0 && cssWidth > 0) {
      ratio = Math.min(ratio, maxWidth / cssWidth);
    }
    if (maxHeight > 0 && cssHeight > 0) {
      ratio = Math.min(ratio, maxHeight / cssHeight);
    }
    return ratio > 1.01 ? ratio : 1;
  }

  /* The X screen size [width, height] the client asks for: the CSS size times ratio, rounded. */
  function screenPixels(cssWidth, cssHeight, ratio) {
    return [Math.round(cssWidth * ratio), Math.round(cssHeight * ratio)];
  }

  /* The DPI the client reports for ratio (Firefox's scale is DPI / 96). */
  function dpiOf(ratio) {
    return Math.round(96 * ratio);
  }

  var api = { pixelRatio: pixelRatio, screenPixels: screenPixels, dpiOf: dpiOf, MAX_RATIO: MAX_RATIO };
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
    return;
  }
  root.ffsystemdScale = api;

  var ratio = 1;
  var factor = [1, 1];  /* X px per CSS px of the frame, each way: the ratio, give or take rounding */
  var maxSize = null;   /* the X screen's largest size, from the server's hello */
  var sentDpi = null;   /* the DPI the server last had from us; null: the client's own (96) */

  /* Size #screen for the frame's current size; false while the frame is hidden (size 0). */
  function layOut(client) {
    var width = window.innerWidth;
    var height = window.innerHeight;
    var screen = client.container;
    if (!width || !height || !screen) {
      return false;
    }
    var next = pixelRatio(window.devicePixelRatio, width, height,
      maxSize && maxSize[0], maxSize && maxSize[1]);
    if (next === 1 && ratio === 1) {
      return true;
    }
    ratio = next;
    var style = screen.style;
    if (ratio === 1) {
      factor = [1, 1];
      style.width = "100%";
      style.height = "100%";
      style.transform = "";
      style.transformOrigin = "";
      return true;
    }
    /* Scaled back to exactly the frame's size (the X size is rounded), so it covers the frame. */
    var size = screenPixels(width, height, ratio);
    factor = [size[0] / width, size[1] / height];
    style.width = size[0] + "px";
    style.height = size[1] + "px";
    style.transformOrigin = "0 0";
    style.transform = "scale(" + width / size[0] + ", " + height / size[1] + ")";
    return true;
  }

  /* The DPI to tell the server now, or null when the client's own packet says it already. */
  function wantedDpi() {
    return ratio === 1 && sentDpi === null ? null : dpiOf(ratio);
  }

  /* Like the client's resize, with the DPI the server needs (packet fields 8 and 9). */
  function sendDesktopSize(client, dpi) {
    var width = client.container.clientWidth;
    var height = client.container.clientHeight;
    client.desktop_width = width;
    client.desktop_height = height;
    client.send(["desktop_size", width, height, client._get_screen_sizes(), 1, [], width, height, dpi, dpi]);
    sentDpi = dpi;
    Object.keys(client.id_to_window).forEach(function (wid) {
      client.id_to_window[wid].screen_resized();
    });
  }

  /* The server's X screen is rootWidth x rootHeight: if that is smaller than the client asked
     for, it is the most there is. */
  function fitInto(client, rootWidth, rootHeight) {
    if (ratio === 1 || !(rootWidth > 0 && rootHeight > 0) ||
        (rootWidth >= client.desktop_width && rootHeight >= client.desktop_height)) {
      return;
    }
    maxSize = [rootWidth, rootHeight];
    if (layOut(client)) {
      sendDesktopSize(client, dpiOf(ratio));
    }
  }

  function patchClient(proto) {
    var getDpi = proto._get_DPI;
    proto._get_DPI = function () {
      return ratio === 1 ? getDpi.apply(this, arguments) : dpiOf(ratio);
    };
    var makeHello = proto._make_hello;
    proto._make_hello = function () {
      layOut(this);
      sentDpi = ratio === 1 ? null : dpiOf(ratio);
      return makeHello.apply(this, arguments);
    };
    var screenResized = proto._screen_resized;
    proto._screen_resized = function () {
      if (!this.connected || !layOut(this)) {
        return screenResized.apply(this, arguments);
      }
      var dpi = wantedDpi();
      if (dpi === sentDpi) {
        return screenResized.apply(this, arguments);
      }
      sendDesktopSize(this, dpi);
      return undefined;
    };
    /* The X screen cannot grow beyond Xvfb's initial size (screen_size): when the server's
       screen ends up smaller than the client asked for (its hello, or a later resize), that
       size is the limit, and the ratio drops so the X size fits (a pointer beyond the X screen
       would not reach Firefox). Xpra's own max_desktop_size is no help: it counts the modes it
       tried to add, also those that failed. */
    var processHello = proto._process_hello;
    proto._process_hello = function (packet, ctx) {
      var result = processHello.apply(this, arguments);
      var root = packet && packet[1] && (packet[1].actual_desktop_size || packet[1].root_window_size);
      if (Array.isArray(root)) {
        fitInto(ctx, Number(root[0]), Number(root[1]));
      }
      return result;
    };
    var processDesktopSize = proto._process_desktop_size;
    proto._process_desktop_size = function (packet, ctx) {
      var result = processDesktopSize.apply(this, arguments);
      if (packet && packet.length >= 3) {
        fitInto(ctx, Number(packet[1]), Number(packet[2]));
      }
      return result;
    };
    var getMouse = proto.getMouse;
    proto.getMouse = function () {
      var mouse = getMouse.apply(this, arguments);
      if (ratio !== 1 && mouse) {
        mouse.x *= factor[0];
        mouse.y *= factor[1];
      }
      return mouse;
    };
  }

  function scaled(point, across, down) {
    var out = {};
    out[across] = point[across] * factor[0];
    out[down] = point[down] * factor[1];
    return out;
  }

  /* jQuery UI measures a drag or a resize of a dialog in CSS pixels of the page: turned into X
     pixels here, so the window follows the pointer and the server gets its true geometry. */
  function patchWindows(proto) {
    var handleResized = proto.handle_resized;
    proto.handle_resized = function (e) {
      if (ratio === 1 || !e || !e.position || !e.originalPosition || !e.size) {
        return handleResized.apply(this, arguments);
      }
      return handleResized.call(this, {
        position: scaled(e.position, "left", "top"),
        originalPosition: scaled(e.originalPosition, "left", "top"),
        size: scaled(e.size, "width", "height"),
      });
    };
    window.jQuery(document).on("drag", function (event, ui) {
      if (ratio !== 1 && ui && ui.position) {
        ui.position.left *= factor[0];
        ui.position.top *= factor[1];
      }
    });
  }

  /* The browser's ratio changed without a resize (the window moved to another screen). */
  function watchRatio() {
    if (!window.matchMedia) {
      return;
    }
    var query = window.matchMedia("(resolution: " + window.devicePixelRatio + "dppx)");
    var onChange = function () {
      query.removeEventListener("change", onChange);
      if (window.client) {
        window.client._screen_resized(null, window.client);
      }
      watchRatio();
    };
    query.addEventListener("change", onChange);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var client = window.XpraClient && window.XpraClient.prototype;
    if (client && typeof client._make_hello === "function" && typeof client.getMouse === "function" &&
        typeof client._get_DPI === "function" && typeof client._screen_resized === "function") {
      patchClient(client);
    }
    var win = window.XpraWindow && window.XpraWindow.prototype;
    if (win && window.jQuery && typeof win.handle_resized === "function") {
      patchWindows(win);
    }
    watchRatio();
  });
})(this);
