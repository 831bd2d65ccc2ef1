// Small shared pieces of the console: data loading, forms, messages, dialogs and formatting.
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';

// Plain-language text for parley's error codes (the server's message is shown beside it).
const EXPLAIN = {
  API_KEY_NOT_CONFIGURED: 'No provider key is set for your account. Add one under "My provider key" (or ask an administrator for a system key).',
  INVALID_API_KEY: 'The provider refused the key. Check it under "My provider key".',
  API_KEY_DECRYPTION_FAILED: 'Your stored provider key cannot be read any more. Set it again under "My provider key".',
  RATE_LIMIT_EXCEEDED: 'Too many requests for now. Wait a moment and try again.',
  BUDGET_EXCEEDED: 'The spending budget is used up.',
  OPENAI_RATE_LIMIT: 'The provider is rate limiting. Try again shortly.',
  OPENAI_TIMEOUT: 'The provider took too long to answer.',
  OPENAI_CONNECTION_ERROR: 'The provider cannot be reached.',
  FORBIDDEN: 'You do not have permission to do this.',
  NOT_FOUND: 'Not found (or not yours).',
  NETWORK_ERROR: 'parley cannot be reached.',
};

export function explain(error) {
  if (!error) return '';
  if (error instanceof ApiError) {
    const hint = EXPLAIN[error.code];
    return hint && hint !== error.message ? `${hint} (${error.message})` : error.message;
  }
  return String(error.message || error);
}

// An error (ApiError or any Error) as an alert; nothing for null.
export function ErrorMessage({ error, id }) {
  if (!error) return null;
  return (
    <p class="error" role="alert" id={id} data-code={error.code || undefined}>
      {explain(error)}
    </p>
  );
}

// A short success or status line announced to screen readers.
export function Notice({ children }) {
  if (!children) return null;
  return (
    <p class="notice" role="status">
      {children}
    </p>
  );
}

// Loads with `load()` (an async function) whenever `deps` change; {data, error, loading, reload, setData}.
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const serial = useRef(0);
  const run = useCallback(async () => {
    const mine = ++serial.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const data = await load();
      if (mine === serial.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === serial.current) setState((s) => ({ ...s, error, loading: false }));
    }
  }, deps);
  useEffect(() => {
    run();
  }, [run]);
  const setData = (f) => setState((s) => ({ ...s, data: typeof f === 'function' ? f(s.data) : f }));
  return { ...state, reload: run, setData };
}

// Runs an async action with a busy flag and an error; returns [run, busy, error, setError].
export function useAction(action) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (...args) => {
    setBusy(true);
    setError(null);
    try {
      return await action(...args);
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return [run, busy, error, setError];
}

// A labelled input (or select / textarea with `as`); extra props go to the control.
export function Field({ label, hint, as = 'input', children, ...props }) {
  const id = useId();
  const Control = as;
  return (
    <div class="field">
      <label for={props.id || id}>{label}</label>
      <Control id={props.id || id} aria-describedby={hint ? `${props.id || id}-hint` : undefined} {...props}>
        {children}
      </Control>
      {hint && (
        <small id={`${props.id || id}-hint`} class="hint">
          {hint}
        </small>
      )}
    </div>
  );
}

// A modal dialog (<dialog>, so focus and Escape behave natively). `open` shows it; onClose is
// called when it is dismissed.
export function Dialog({ open, title, onClose, children }) {
  const ref = useRef(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={onClose} onCancel={onClose}>
      <h2 id={titleId}>{title}</h2>
      {open && children}
    </dialog>
  );
}

// A confirmation dialog: resolves the user's choice through onAnswer(true | false).
export function Confirm({ open, title, message, confirmLabel = 'Confirm', danger = false, onAnswer }) {
  return (
    <Dialog open={open} title={title} onClose={() => onAnswer(false)}>
      <p>{message}</p>
      <div class="actions">
        <button type="button" onClick={() => onAnswer(false)}>
          Cancel
        </button>
        <button type="button" class={danger ? 'danger' : 'primary'} onClick={() => onAnswer(true)}>
          {confirmLabel}
        </button>
      </div>
    </Dialog>
  );
}

// A table (or other wide content) that scrolls sideways on narrow screens: a labelled region that
// the keyboard can reach, so that its hidden part can be scrolled without a mouse.
export function ScrollRegion({ label, class: extra = '', children }) {
  return (
    <div class={`table-wrap ${extra}`.trim()} tabIndex={0} role="region" aria-label={label}>
      {children}
    </div>
  );
}

export function Loading({ label = 'Loading…' }) {
  return (
    <p class="loading" role="status" aria-live="polite">
      {label}
    </p>
  );
}

export function PageTitle({ children, actions }) {
  useEffect(() => {
    document.title = `${typeof children === 'string' ? children : 'parley'} · parley console`;
  }, [children]);
  return (
    <div class="page-title">
      <h1>{children}</h1>
      {actions && <div class="actions">{actions}</div>}
    </div>
  );
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const money = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD', maximumFractionDigits: 4 });

export function fmtDate(value) {
  if (!value) return '—';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : dateTime.format(d);
}

export function fmtInt(n) {
  return n === null || n === undefined ? '—' : integer.format(n);
}

export function fmtCost(n) {
  return n === null || n === undefined ? '—' : money.format(n);
}

// Copies text to the clipboard; resolves true when it worked.
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
