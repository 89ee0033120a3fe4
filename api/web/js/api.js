// Calls to the curator REST API from the page. The browser sends the HttpOnly session cookie by
// itself; requests that change state carry the session's CSRF token in X-CSRF-Token.

let csrfToken = null;
let onUnauthorized = () => {};

/** An error answer: HTTP status, the stable `code` and the readable `detail`. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** Remember the CSRF token of the signed-in session (null when signed out). */
export function setCsrf(token) {
  csrfToken = token;
}

/** Called when any call answers 401 (the session ended: expired, signed out elsewhere, key revoked). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/**
 * Call the API; resolves to the JSON answer (null for 204), rejects with ApiError.
 * @param {string} method
 * @param {string} path
 * @param {object} [body] sent as JSON
 * @param {{quiet401?: boolean}} [options] quiet401: do not call the 401 handler
 */
export async function api(method, path, body, options = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "network_error", `the server cannot be reached (${err.message})`);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      (data && data.code) || "http_error",
      (data && data.detail) || response.statusText,
    );
    if (response.status === 401 && !options.quiet401) onUnauthorized(error);
    throw error;
  }
  return data;
}
