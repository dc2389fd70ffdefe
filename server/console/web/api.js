// The API client. The token lives in sessionStorage (gone with the tab) and
// travels only in the Authorization header: never in a URL, where proxies
// and server logs would keep it. Event streams use fetch and a
// ReadableStream for that reason: EventSource cannot set headers.

const KEY = 'fota-token';
export const token = () => sessionStorage.getItem(KEY) || '';
export const setToken = (t) => t ? sessionStorage.setItem(KEY, t) : sessionStorage.removeItem(KEY);

export class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(path, { method = 'GET', body, type, signal } = {}) {
  const headers = { Authorization: 'Bearer ' + token() };
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Blob) && !(body instanceof FormData)) {
    body = JSON.stringify(body); type = 'application/json';
  }
  if (type) headers['Content-Type'] = type;
  const r = await fetch(path, { method, headers, body, signal });
  const text = await r.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch { /* plain text answer */ }
  if (!r.ok) {
    const msg = (data && (data.detail || data.message || data.error || data.title)) || text || r.statusText;
    throw new APIError(r.status, `${r.status}: ${msg}`);
  }
  return data;
}

// stream reads a server-sent event stream and calls onEvent(type, data)
// until signal aborts it; it reconnects after a dropped connection.
export async function stream(path, onEvent, signal) {
  while (!signal.aborted) {
    try {
      const r = await fetch(path, { headers: { Authorization: 'Bearer ' + token(), Accept: 'text/event-stream' }, signal });
      if (!r.ok) throw new APIError(r.status, 'event stream: ' + r.status);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
          let type = 'message', data = '';
          for (const line of chunk.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (data) { try { onEvent(type, JSON.parse(data)); } catch (e) { console.warn('event', e); } }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof APIError && e.status === 401) throw e;
    }
    await new Promise((res) => setTimeout(res, 2000));
  }
}

// upload sends a file with XMLHttpRequest, the one browser API that
// reports upload progress.
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', path);
    x.setRequestHeader('Authorization', 'Bearer ' + token());
    x.setRequestHeader('Content-Type', 'application/octet-stream');
    x.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    x.onload = () => x.status < 300 ? resolve(JSON.parse(x.responseText || 'null')) : reject(new APIError(x.status, `${x.status}: ${x.responseText}`));
    x.onerror = () => reject(new Error('upload failed'));
    x.send(file);
  });
}
