/**
 * The built-in web client (`[web_client]`), as Prosody's mod_conversejs offers: `GET /` or
 * `/chat` serves a page that runs converse.js, set up for this server's WebSocket, so a person
 * can chat from a browser with nothing else installed.
 *
 * converse.js comes from npm (`converse.js` in deno.json) and its files are loaded as text
 * modules, so `deno compile` embeds them and no file outside the project needs reading. Only
 * an allow-list of its files is served, each loaded on first request and kept: the bundle, its
 * style sheet, the emoji table and the logo. Binary assets (fonts, sounds, the OMEMO library's
 * WebAssembly) are left out: fonts fall back to the browser's, sounds are off, OMEMO is not
 * offered.
 *
 * The page's settings come from a script beside it (`/conversejs/init.js`), not an inline one,
 * so that its Content-Security-Policy can forbid inline scripts.
 * @module
 */

/** The converse.js release served (the version pinned in deno.json). */
export const CONVERSE_VERSION = "14.0.0";
/** Where the page finds converse.js's files; converse.js's `assets_path`. */
export const ASSETS_PATH = "/conversejs";
/** The paths the page itself is served at. */
export const PAGE_PATHS: readonly string[] = ["/", "/chat"];

interface Asset {
  readonly type: string;
  readonly load: () => Promise<string>;
}

// Literal specifiers: `deno compile` and the npm resolver see exactly what is needed.
const ASSETS: Readonly<Record<string, Asset>> = {
  "converse.min.js": {
    type: "text/javascript; charset=utf-8",
    load: async () =>
      (await import("converse.js/dist/converse.min.js", { with: { type: "text" } })).default,
  },
  "converse.min.css": {
    type: "text/css; charset=utf-8",
    load: async () =>
      (await import("converse.js/dist/converse.min.css", { with: { type: "text" } })).default,
  },
  "emoji.json": {
    type: "application/json",
    // JSON modules cannot be imported as text: parsed, then written out again.
    load: async () =>
      JSON.stringify(
        (await import("converse.js/dist/emoji.json", { with: { type: "json" } })).default,
      ),
  },
  "images/logo/conversejs-filled.svg": {
    type: "image/svg+xml",
    load: async () =>
      (await import("converse.js/dist/images/logo/conversejs-filled.svg", {
        with: { type: "text" },
      })).default,
  },
};

/** What the page is set up with. */
export interface WebClientOptions {
  /** The domain a bare username logs in to (the first host). */
  readonly domain: string;
  /**
   * The origin of this server's upload URLs (`http://localhost:5280`), when upload is on: the
   * page may show images and media from there (asked per request: known once a port is bound).
   */
  readonly uploadOrigin?: () => string | undefined;
}

/**
 * The page's Content-Security-Policy: only our own scripts; styles inline (converse.js sets
 * them); images and media from our own origins only, so that a link someone sends (or the
 * client's sponsor logos) makes no request to a third party; the WebSocket and uploads of any
 * of our ports.
 */
export function pageCsp(uploadOrigin: string | undefined): string {
  const media = ["'self'", "data:", "blob:", ...(uploadOrigin === undefined ? [] : [uploadOrigin])]
    .join(" ");
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    `img-src ${media}`,
    `media-src ${media}`,
    "connect-src 'self' ws: wss: http: https:",
    "font-src 'self' data:",
    "worker-src 'self' blob:",
    "frame-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

// Fonts converse.js would fetch (binary files we do not serve) replaced by the system's, and the
// sponsor block of its footer hidden (its logos are on a third party's site).
const LOCAL_CSS = `body.converse-fullscreen, .conversejs, converse-bg, #conversejs-bg {
  --heading-font: system-ui, sans-serif;
  --branding-font: system-ui, sans-serif;
}
converse-footer .sponsors { display: none; }
`;

const SAFE_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/** The HTML page that runs the client. */
export function webClientPage(opts: WebClientOptions): string {
  const title = escapeHtml(`Chat on ${opts.domain}`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" type="image/svg+xml" href="${ASSETS_PATH}/images/logo/conversejs-filled.svg">
<link rel="stylesheet" href="${ASSETS_PATH}/converse.min.css">
<link rel="stylesheet" href="${ASSETS_PATH}/local.css">
<script type="module" src="${ASSETS_PATH}/converse.min.js"></script>
<script type="module" src="${ASSETS_PATH}/init.js"></script>
</head>
<body class="converse-fullscreen">
<noscript>This chat needs JavaScript.</noscript>
</body>
</html>
`;
}

/**
 * The script that starts converse.js. The WebSocket URL is the page's own origin, so the page
 * works however it is reached (`ws://` over HTTP, `wss://` over HTTPS or through a proxy).
 */
export function webClientInit(opts: WebClientOptions): string {
  const settings = {
    assets_path: ASSETS_PATH,
    view_mode: "fullscreen",
    i18n: "en",
    discover_connection_methods: false,
    default_domain: opts.domain,
    allow_registration: false,
    play_sounds: false,
    show_client_info: false,
    // OMEMO needs a WebAssembly library this page does not serve.
    blacklisted_plugins: ["converse-omemo"],
    loglevel: "warn",
  };
  // JSON is a JavaScript literal; "<" escaped so that no value can end a script element.
  const json = JSON.stringify(settings).replace(/</g, "\\u003c");
  return `"use strict";
(function () {
  var settings = ${json};
  settings.websocket_url = (location.protocol === "https:" ? "wss://" : "ws://") +
    location.host + "/xmpp-websocket";
  converse.initialize(settings);
})();
`;
}

/** A request handler for the web client's paths; undefined for a path it does not serve. */
export type WebClientHandler = (req: Request) => Promise<Response> | undefined;

/** The web client's handler: the page, its settings script and converse.js's files. */
export function createWebClient(opts: WebClientOptions): WebClientHandler {
  const page = webClientPage(opts);
  const init = webClientInit(opts);
  const loaded = new Map<string, Promise<string>>();
  const respond = (
    req: Request,
    body: string,
    type: string,
    extra: Record<string, string>,
  ): Response => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("Method not allowed\n", {
        status: 405,
        headers: { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" },
      });
    }
    return new Response(req.method === "HEAD" ? null : body, {
      headers: { "content-type": type, ...SAFE_HEADERS, ...extra },
    });
  };
  return (req) => {
    const path = new URL(req.url).pathname;
    if (PAGE_PATHS.includes(path)) {
      return Promise.resolve(respond(req, page, "text/html; charset=utf-8", {
        "content-security-policy": pageCsp(opts.uploadOrigin?.()),
        "x-frame-options": "DENY",
        "cache-control": "no-cache",
      }));
    }
    if (!path.startsWith(ASSETS_PATH + "/")) return undefined;
    const name = path.slice(ASSETS_PATH.length + 1);
    if (name === "init.js") {
      return Promise.resolve(
        respond(req, init, "text/javascript; charset=utf-8", { "cache-control": "no-cache" }),
      );
    }
    if (name === "local.css") {
      return Promise.resolve(
        respond(req, LOCAL_CSS, "text/css; charset=utf-8", { "cache-control": "no-cache" }),
      );
    }
    if (!Object.hasOwn(ASSETS, name)) return undefined;
    const asset = ASSETS[name];
    let text = loaded.get(name);
    if (text === undefined) {
      text = asset.load();
      loaded.set(name, text);
      // A failed load is tried again on the next request rather than kept.
      text.catch(() => loaded.delete(name));
    }
    return text.then(
      (body) =>
        respond(req, body, asset.type, {
          // The files change only with the pinned release, which names them.
          "cache-control": "public, max-age=86400",
          etag: `"converse-${CONVERSE_VERSION}-${name}"`,
        }),
      (err) =>
        new Response(`The web client's files could not be loaded: ${err}\n`, {
          status: 503,
          headers: { "content-type": "text/plain; charset=utf-8", ...SAFE_HEADERS },
        }),
    );
  };
}
