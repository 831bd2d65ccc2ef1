// Browser sessions: the access token in memory (api.js), the refresh token in an HttpOnly,
// SameSite=Strict cookie scoped to /api/v1/auth/refresh that parley sets when a request carries
// "X-Parley-Session: cookie" (a header no cross-site form can send). A reload restores the session
// through that cookie; signing out revokes it.
import { api, ApiError, setAccessToken, setRefresher, request, errorOf } from './api.js';

const COOKIE_MODE = { 'X-Parley-Session': 'cookie' };
let renewTimer = null;
let inflight = null;
let onEnded = () => {};

// Called with a reason when the session ends without the user signing out (expired, revoked).
export function onSessionEnded(fn) {
  onEnded = fn;
}

function adopt(tokens) {
  setAccessToken(tokens.access_token);
  clearTimeout(renewTimer);
  // Renew a little before the access token expires, so that calls rarely meet a 401.
  const ms = Math.max(5, Number(tokens.expires_in || 60) - 30) * 1000;
  renewTimer = setTimeout(() => {
    renew().then((ok) => {
      if (!ok) onEnded('expired');
    });
  }, ms);
}

function forget() {
  clearTimeout(renewTimer);
  renewTimer = null;
  setAccessToken(null);
}

// Exchanges the refresh cookie for a new access token (and a new cookie). One at a time.
export function renew() {
  if (!inflight) {
    inflight = (async () => {
      try {
        const res = await request('/api/v1/auth/refresh', { method: 'POST', headers: COOKIE_MODE, anonymous: true });
        if (!res.ok) {
          forget();
          return false;
        }
        adopt(await res.json());
        return true;
      } catch {
        return false;
      } finally {
        inflight = null;
      }
    })();
  }
  return inflight;
}

setRefresher(async () => {
  const ok = await renew();
  if (!ok) onEnded('expired');
  return ok;
});

export async function me() {
  return api('/api/v1/users/me');
}

// Signs in; resolves with the user, or throws ApiError.
export async function signIn(username, password) {
  const body = new URLSearchParams({ grant_type: 'password', username, password });
  const res = await request('/api/v1/auth/token', { method: 'POST', headers: COOKIE_MODE, body, anonymous: true });
  if (!res.ok) throw await errorOf(res);
  adopt(await res.json());
  return me();
}

// Creates an account, then signs in with it.
export async function register({ username, email, password }) {
  await api('/api/v1/auth/register', { method: 'POST', body: { username, email, password }, anonymous: true });
  return signIn(username, password);
}

// Restores the session of a reloaded page from the refresh cookie; resolves with the user or null.
export async function restore() {
  if (!(await renew())) return null;
  try {
    return await me();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function signOut() {
  try {
    await request('/api/v1/auth/refresh', { method: 'DELETE', headers: COOKIE_MODE, anonymous: true });
  } finally {
    forget();
  }
}

// What the server allows before sign-in: {registration: "open" | "first_user" | "closed"}.
export async function authOptions() {
  try {
    return await api('/api/v1/auth/options', { anonymous: true });
  } catch {
    return { registration: 'closed' };
  }
}
