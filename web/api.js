// REST calls. The session cookie authenticates them; the page never sees the API key.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const auth = new EventTarget();

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) q.append(k, String(item));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function request(method, path, params, body) {
  let resp;
  try {
    resp = await fetch(path + query(params), {
      method,
      credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    throw new ApiError(0, "network", `The server did not answer (${err.message}).`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (resp.status === 401) auth.dispatchEvent(new Event("signedout"));
  if (!resp.ok) {
    const d = data?.detail ?? {};
    throw new ApiError(resp.status, d.code ?? `http_${resp.status}`, d.message ?? resp.statusText);
  }
  return data;
}

export const get = (path, params) => request("GET", path, params);
export const post = (path, body) => request("POST", path, null, body ?? {});
export const patch = (path, body) => request("PATCH", path, null, body ?? {});

export async function session() {
  try {
    await get("/v1/session");
    return true;
  } catch (err) {
    if (err.status === 401) return false;
    throw err;
  }
}
