// The Chat page: the user's conversations (a list with search), one conversation's messages with
// answers streamed token by token (SSE over fetch), stop / regenerate, a model picker (the listed
// models, or "Another model…": a name typed, with the patterns providers route as a hint), and an
// answer that survives a reload (its events so far are replayed and drawn at once, then followed).
//
// Routes: #/chat (no conversation: the first message sent creates one) and #/chat/<conversation_id>.
// API: docs/CONVERSATIONS.md.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, errorOf, query, readEvents, request, ApiError } from '../api.js';
import { Confirm, Dialog, ErrorMessage, Field, Loading, Notice, PageTitle, copyText, fmtDate } from '../ui.jsx';
import { renderMarkdown } from '../markdown.js';
import './chat.css';

const NEWEST = Number.MAX_SAFE_INTEGER; // `before` this seq: the newest messages
const PAGE = 20; // messages shown at first (reconnect's own page size) and loaded per "earlier" click
const MAX_RESUMES = 3; // a stream that breaks off is followed again (from the last event) this often
const OTHER = '\u0001other'; // the model picker's "Another model…" (no model name starts with U+0001)

const conversationsPath = (user) => `/api/v1/users/${encodeURIComponent(user.id)}/conversations`;
const messagesPath = (cid) => `/api/v1/conversations/${encodeURIComponent(cid)}/messages`;

// "<message_id>:<n>" → n (null when the id is not one of parley's).
function eventNumber(id) {
  const m = /:(\d+)$/.exec(id || '');
  return m ? Number(m[1]) : null;
}

// A short title for a conversation made by its first message.
function titleFrom(text) {
  const line = text.trim().split(/\s+/).join(' ');
  return line.length > 60 ? `${line.slice(0, 57)}…` : line || 'New conversation';
}

// An answer just started (until its events fill it in).
const newAnswer = (id, parentId, model) => ({
  id,
  role: 'assistant',
  content: '',
  status: 'generating',
  ai_model: model || null,
  parent_id: parentId,
});

const STATUS_LABEL = { generating: 'Generating…', cancelled: 'Stopped', failed: 'Failed' };

// ---------------------------------------------------------------------------------------------
// The conversation list: search (the `q` parameter, full text), newest first, "show more".

function ConversationList({ user, currentId, version, onNew, onPicked }) {
  const [q, setQ] = useState('');
  const [typed, setTyped] = useState('');
  const [state, setState] = useState({ items: [], next: null, total: 0, loading: true, error: null });

  // Search as the user types, a moment after the last key.
  useEffect(() => {
    const t = setTimeout(() => setQ(typed.trim()), 250);
    return () => clearTimeout(t);
  }, [typed]);

  const load = async (cursor, signal) => {
    const page = await api(`${conversationsPath(user)}${query({ q, limit: 50, cursor })}`, { signal });
    setState((s) => ({
      items: cursor ? [...s.items, ...page.items] : page.items,
      next: page.next_cursor,
      total: page.total,
      loading: false,
      error: null,
    }));
  };
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    load(null, controller.signal).catch((error) => {
      if (error.name !== 'AbortError') setState((s) => ({ ...s, loading: false, error }));
    });
    return () => controller.abort();
  }, [q, version, user.id]);

  return (
    <>
      <div class="chat-list-head">
        <h2>Conversations</h2>
        <button type="button" class="primary" onClick={onNew}>
          New conversation
        </button>
      </div>
      <form role="search" class="chat-search" onSubmit={(e) => e.preventDefault()}>
        <Field
          label="Search conversations"
          type="search"
          value={typed}
          onInput={(e) => setTyped(e.currentTarget.value)}
          autocomplete="off"
        />
      </form>
      <ErrorMessage error={state.error} />
      {state.loading && !state.items.length ? (
        <Loading />
      ) : (
        <p class="muted chat-count" role="status">
          {q ? `${state.total} found` : `${state.total} conversation${state.total === 1 ? '' : 's'}`}
        </p>
      )}
      <ul class="chat-conversations">
        {state.items.map((c) => (
          <li key={c.id}>
            <a
              href={`#/chat/${encodeURIComponent(c.id)}`}
              aria-current={c.id === currentId ? 'page' : undefined}
              onClick={onPicked}
            >
              <span class="chat-conv-title">{c.title}</span>
              <span class="chat-conv-meta">
                {c.status === 'ended' && <span class="chat-badge">Ended</span>}
                {fmtDate(c.last_message_at || c.updated_at)}
              </span>
            </a>
          </li>
        ))}
      </ul>
      {state.next && (
        <button type="button" class="link" onClick={() => load(state.next).catch((error) => setState((s) => ({ ...s, error })))}>
          Show more conversations
        </button>
      )}
    </>
  );
}

// ---------------------------------------------------------------------------------------------
// One message. Markdown is rendered (safely: markdown.js) only when the text changes.

function Message({ message, shown, siblings, onSibling, onRegenerate, canRegenerate }) {
  const text = shown ? shown.content : message.content;
  const html = useMemo(() => renderMarkdown(text), [text]);
  const mine = message.role === 'user';
  const status = (shown || message).status;
  const model = (shown || message).ai_model;
  return (
    <article
      class={`chat-msg chat-msg-${mine ? 'user' : 'assistant'}`}
      data-role={message.role}
      data-status={status}
      data-message-id={(shown || message).id}
      aria-label={mine ? 'You' : 'Assistant'}
    >
      <div class="chat-msg-head">
        <span class="chat-who">{mine ? 'You' : 'Assistant'}</span>
        {!mine && model && <span class="muted">{model}</span>}
        {STATUS_LABEL[status] && <span class={`chat-badge chat-badge-${status}`}>{STATUS_LABEL[status]}</span>}
      </div>
      {/* eslint-disable-next-line react/no-danger -- sanitised by markdown.js */}
      <div class="chat-body" dangerouslySetInnerHTML={{ __html: html }} />
      {status === 'failed' && (
        <p class="error chat-failed">
          {explainCode((shown || message).error_code, (shown || message).error_message)}
          {(shown || message).content ? ' The text received before the failure is kept above.' : ''}
        </p>
      )}
      {!mine && (siblings || canRegenerate) && (
        <div class="chat-msg-actions">
          {siblings && siblings.items.length > 1 && (
            <span class="chat-siblings">
              <button
                type="button"
                aria-label="Previous answer"
                disabled={siblings.index === 0}
                onClick={() => onSibling(siblings.index - 1)}
              >
                ‹
              </button>
              <span>
                Answer {siblings.index + 1} of {siblings.items.length}
              </span>
              <button
                type="button"
                aria-label="Next answer"
                disabled={siblings.index === siblings.items.length - 1}
                onClick={() => onSibling(siblings.index + 1)}
              >
                ›
              </button>
            </span>
          )}
          {canRegenerate && (
            <button type="button" onClick={onRegenerate}>
              Regenerate
            </button>
          )}
        </div>
      )}
    </article>
  );
}

// A failed answer's reason in words (the stored error_code, the stream's message when we have it).
function explainCode(code, message) {
  const words = {
    API_KEY_NOT_CONFIGURED: 'No provider key is set for your account.',
    INVALID_API_KEY: 'The provider refused the key.',
    OPENAI_RATE_LIMIT: 'The provider is rate limiting.',
    OPENAI_TIMEOUT: 'The provider took too long to answer.',
    OPENAI_CONNECTION_ERROR: 'The connection to the provider broke off.',
    INTERRUPTED: 'parley stopped while answering.',
    NETWORK_ERROR: 'The connection to parley broke off.',
  };
  const first = words[code] || 'The answer could not be completed.';
  return `${first}${message && !words[code] ? ` (${message})` : ''}${code ? ` [${code}]` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// The page.

export function ChatPage({ user, params, navigate }) {
  const id = params[0] || null;
  const [conv, setConv] = useState(null);
  const [messages, setMessages] = useState([]);
  const [hasMore, setHasMore] = useState(false);
  const [phase, setPhase] = useState(id ? 'loading' : 'ready'); // loading | ready | notfound | error
  const [loadError, setLoadError] = useState(null);
  const [streaming, setStreaming] = useState(null); // the answer being followed: its message id, or 'pending'
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');
  const [input, setInput] = useState('');
  const [models, setModels] = useState(null); // the exact model names of GET /v1/models (null: not yet)
  const [served, setServed] = useState([]); // the model patterns providers route ("gpt-*", …)
  const [model, setModel] = useState(''); // the model picked or typed ('' : the default model)
  const [typing, setTyping] = useState(false); // "Another model…" picked: the model is typed
  const [siblings, setSiblings] = useState(null); // {parentId, items, index} for the last answer
  const [listOpen, setListOpen] = useState(!id);
  const [listVersion, setListVersion] = useState(0);
  const [renaming, setRenaming] = useState(false);
  const [newTitle, setNewTitle] = useState('');
  const [deleting, setDeleting] = useState(false);
  const [busy, setBusy] = useState(false);

  // One AbortController per conversation opened: every request and stream of that view uses its
  // signal, and opening another conversation (or leaving the page) aborts it. Leaving is not
  // cancelling: an answer being generated goes on in parley.
  const view = useRef(new AbortController());
  const skipLoad = useRef(null); // a conversation this page just created (its state is already here)
  const logRef = useRef(null);
  const inputRef = useRef(null);
  const modelNameRef = useRef(null);
  const stick = useRef(true); // keep the log scrolled to the bottom while the user has not scrolled up

  const refreshList = () => setListVersion((v) => v + 1);

  // The models the user can pick (GET /v1/models accepts the console's access token). It lists only
  // exact names: the patterns providers route (GET /api/v1/providers) are given as a hint for a
  // model typed under "Another model…".
  useEffect(() => {
    api('/v1/models')
      .then((r) => setModels((r.data || []).map((m) => m.id).sort()))
      .catch(() => setModels([]));
    api('/api/v1/providers')
      .then((r) => {
        const all = (r.data || []).flatMap((p) => p.models || []);
        setServed([...new Set(all.filter((m) => m.includes('*')))]);
      })
      .catch(() => setServed([]));
  }, []);

  useEffect(() => () => view.current.abort(), []);

  // Open the conversation of the address.
  useEffect(() => {
    if (id) setListOpen(false); // at phone width the list folds away once a conversation is open
    if (id && skipLoad.current === id) {
      skipLoad.current = null; // created by this view's first message: keep following it
      return;
    }
    view.current.abort();
    view.current = new AbortController();
    setStreaming(null);
    setError(null);
    setNotice('');
    setSiblings(null);
    setMessages([]);
    setHasMore(false);
    setConv(null);
    setTyping(false);
    if (!id) {
      setPhase('ready');
      setModel('');
      return;
    }
    setPhase('loading');
    openConversation(id, view.current.signal);
  }, [id]);

  // A model name refused by parley: back to its box, to be corrected.
  useEffect(() => {
    if (error?.param === 'model') modelNameRef.current?.focus();
  }, [error]);

  // Keep the newest text in view while it streams, unless the user scrolled up to read.
  useEffect(() => {
    const log = logRef.current;
    if (log && stick.current) log.scrollTop = log.scrollHeight;
  }, [messages]);

  async function openConversation(cid, signal) {
    const path = `${conversationsPath(user)}/${encodeURIComponent(cid)}`;
    try {
      const c = await api(path, { signal });
      let loaded;
      let generating = null;
      let more = false;
      let conversation = c;
      if (c.status === 'active') {
        // reconnect: the newest messages and the answer being generated, if any.
        const r = await api(`${path}/reconnect`, { method: 'POST', signal });
        conversation = r.conversation;
        loaded = r.messages;
        more = r.has_more;
        generating = r.generating;
      } else {
        // An ended conversation: reconnect would re-open it, so only read it.
        const r = await api(`${messagesPath(cid)}${query({ before: NEWEST, limit: PAGE })}`, { signal });
        loaded = r.items;
        more = r.has_more;
      }
      if (signal.aborted) return;
      const answering = generating?.message_id || loaded.find((m) => m.status === 'generating')?.id || null;
      // The stored text of an answer being generated lags behind its events (it is saved about once
      // a second, and the saved part does not say how many events it holds): it is shown while the
      // answer is followed from its first event, and the replayed events then take its place at
      // once (follow's catchUp), so that nothing is shown twice or missed.
      setMessages(loaded);
      setHasMore(more);
      setConv(conversation);
      setModel(conversation.model || '');
      setPhase('ready');
      stick.current = true;
      if (answering) {
        setStreaming(answering);
        const res = await request(`${messagesPath(cid)}/${encodeURIComponent(answering)}/stream`, { signal });
        const catchUp = generating?.message_id === answering ? generating.events : 0;
        if (await follow(cid, answering, res, signal, catchUp)) refreshList();
      }
      loadSiblings(cid, [...loaded].reverse().find((m) => m.role === 'assistant'), signal);
    } catch (e) {
      if (signal.aborted) return;
      setLoadError(e);
      setPhase(e.status === 404 ? 'notfound' : 'error');
    }
  }

  // The answers to the last question (after a regenerate there are several).
  async function loadSiblings(cid, last, signal) {
    if (!last || !last.parent_id) return setSiblings(null);
    try {
      const r = await api(`${messagesPath(cid)}/${encodeURIComponent(last.id)}/siblings`, { signal });
      const items = r.items || [];
      const index = Math.max(0, items.findIndex((m) => m.id === last.id));
      setSiblings(items.length > 1 ? { parentId: last.parent_id, items, index } : null);
    } catch {
      if (!signal.aborted) setSiblings(null);
    }
  }

  const patchMessage = (mid, f) => setMessages((ms) => ms.map((m) => (m.id === mid ? { ...m, ...f(m) } : m)));

  // Follows an answer's SSE events: appends each token to the message as it comes, applies the
  // terminal event, and when the stream breaks off before that, follows it again from the last
  // event shown (?after=N): no text twice, none lost. True when the answer ended here.
  //
  // `catchUp` (after a reload): the stream starts at the answer's first event, and the message
  // shows its stored text meanwhile. The first `catchUp` events (those produced before the page
  // asked) are a replay: they are gathered and drawn together in one frame, in place of the stored
  // text, rather than typed out again; the events after them stream as usual.
  async function follow(cid, mid, res, signal, catchUp = null) {
    let shown = 0;
    let ended = false;
    let resumes = 0;
    let replace = catchUp !== null; // the first text drawn replaces the stored text
    // Tokens are put on screen once per frame (a fast answer would otherwise re-render its
    // markdown for every piece).
    let pending = '';
    let frame = 0;
    const flush = () => {
      frame = 0;
      const text = pending;
      pending = '';
      if (!text || signal.aborted) return;
      // (the stored text and the replay are both the answer's beginning: the longer one stays)
      if (replace) patchMessage(mid, (m) => ({ content: text.length >= m.content.length ? text : m.content }));
      else patchMessage(mid, (m) => ({ content: m.content + text }));
      replace = false;
    };
    const settle = (fields) => {
      cancelAnimationFrame(frame);
      frame = 0;
      pending = '';
      replace = false;
      ended = true;
      patchMessage(mid, () => fields);
    };
    try {
      for (;;) {
        if (!res.ok) throw await errorOf(res);
        try {
          for await (const ev of readEvents(res, signal)) {
            const n = eventNumber(ev.id);
            if (n !== null && n <= shown) continue;
            let data;
            try {
              data = JSON.parse(ev.data);
            } catch {
              continue;
            }
            if (n !== null) shown = n;
            if (typeof data.token === 'string') {
              pending += data.token;
              // (while replaying, nothing is drawn before the replay is all here)
              if (!frame && (catchUp === null || shown >= catchUp)) frame = requestAnimationFrame(flush);
            } else if (data.done) {
              settle({
                content: data.full_text ?? '',
                status: data.status,
                ai_model: data.model,
                usage: data.usage,
                latency_ms: data.latency_ms,
              });
            } else if (data.error) {
              settle({
                content: data.partial_text ?? '',
                status: 'failed',
                error_code: data.error.code,
                error_message: data.error.message,
              });
            }
          }
        } catch (e) {
          if (signal.aborted) return false;
          // a broken connection: followed again below
        }
        if (ended || signal.aborted) break;
        if (++resumes > MAX_RESUMES) throw new ApiError(0, { message: 'The answer stream broke off; reload to see it.' });
        res = await request(`${messagesPath(cid)}/${encodeURIComponent(mid)}/stream${query({ after: shown })}`, { signal });
      }
    } catch (e) {
      if (!signal.aborted) setError(e);
    } finally {
      cancelAnimationFrame(frame);
      if (pending) flush(); // a stream that failed for good keeps what it received
      if (!signal.aborted) setStreaming((s) => (s === mid ? null : s));
    }
    return ended && !signal.aborted;
  }

  // Starts an answer: `path` is POST …/messages or …/regenerate; `place` puts the new messages in
  // the list once parley has named them (X-Message-Id, X-User-Message-Id). Resolves with the
  // answer's id, or null when parley refused.
  async function startAnswer(cid, path, body, place) {
    const signal = view.current.signal;
    setStreaming('pending');
    setError(null);
    setNotice('');
    let res;
    try {
      res = await request(path, { method: 'POST', body: { ...body, stream: true }, signal });
      if (!res.ok) throw await errorOf(res);
    } catch (e) {
      if (signal.aborted) return null;
      setStreaming(null);
      setError(e);
      if (e.status === 409 || e.status === 404) refreshConversation(cid, signal);
      return null;
    }
    const mid = res.headers.get('X-Message-Id');
    place(mid, res.headers.get('X-User-Message-Id'));
    setStreaming(mid);
    stick.current = true;
    if (await follow(cid, mid, res, signal)) refreshList();
    return mid;
  }

  // The conversation's state again (after a 409: it may have ended elsewhere).
  async function refreshConversation(cid, signal) {
    try {
      const c = await api(`${conversationsPath(user)}/${encodeURIComponent(cid)}`, { signal });
      setConv(c);
    } catch {
      /* the error shown already says what went wrong */
    }
  }

  async function send(e) {
    e?.preventDefault();
    const text = input;
    if (!text.trim() || streaming || busy || (conv && conv.status !== 'active')) return;
    setError(null);
    const chosen = model.trim();
    let cid = conv?.id;
    let known = conv?.model || ''; // the conversation's model as parley has it
    if (!cid) {
      // The first message of a new conversation creates it.
      const signal = view.current.signal;
      try {
        setBusy(true);
        const created = await api(conversationsPath(user), {
          method: 'POST',
          body: { title: titleFrom(text), ...(chosen ? { model: chosen } : {}) },
          signal,
        });
        cid = created.id;
        known = created.model || '';
        skipLoad.current = cid;
        setConv(created);
        navigate(`chat/${cid}`);
        refreshList();
      } catch (err) {
        if (!signal.aborted) setError(err);
        return;
      } finally {
        setBusy(false);
      }
    }
    setInput('');
    const body = { content: text, ...(chosen ? { model: chosen } : {}) };
    const mid = await startAnswer(cid, messagesPath(cid), body, (aid, uid) => {
      setSiblings(null);
      setMessages((ms) => [
        ...ms,
        { id: uid, role: 'user', content: text, status: 'complete' },
        newAnswer(aid, uid, chosen),
      ]);
    });
    // Nothing was stored: give the text back to the user.
    if (!mid) setInput((now) => now || text);
    else if (chosen && chosen !== known) rememberModel(cid, chosen);
  }

  // A typed model that parley accepted (an answer was started with it) becomes the conversation's
  // model, as a picked one does at once (an unknown name is refused when sending, before anything
  // is stored, and stays in the box to be corrected).
  async function rememberModel(cid, name) {
    const signal = view.current.signal;
    try {
      const path = `${conversationsPath(user)}/${encodeURIComponent(cid)}`;
      const c = await api(path, { method: 'PATCH', body: { model: name }, signal });
      if (!signal.aborted) setConv(c);
    } catch (e) {
      if (!signal.aborted) setError(e);
    }
  }

  async function regenerate() {
    const last = [...messages].reverse().find((m) => m.role === 'assistant');
    if (!last || !conv) return;
    const cid = conv.id;
    const signal = view.current.signal;
    const chosen = model.trim();
    const mid = await startAnswer(
      cid,
      `${messagesPath(cid)}/${encodeURIComponent(last.id)}/regenerate`,
      chosen ? { model: chosen } : {},
      (aid) => {
        setSiblings(null);
        setMessages((ms) => ms.map((m) => (m.id === last.id ? newAnswer(aid, last.parent_id, chosen) : m)));
      },
    );
    // The old answer and the new one are siblings: offer to look at both.
    if (mid && !signal.aborted) loadSiblings(cid, { id: mid, parent_id: last.parent_id }, signal);
    if (mid && chosen && chosen !== (conv.model || '')) rememberModel(cid, chosen);
  }

  async function stop() {
    if (!conv || !streaming || streaming === 'pending') return;
    try {
      await api(`${messagesPath(conv.id)}/${encodeURIComponent(streaming)}/cancel`, { method: 'POST' });
      // The stream's terminal event (status "cancelled") follows and ends the answer here.
    } catch (e) {
      if (e.status !== 409) setError(e); // 409: it had already ended
    }
  }

  async function earlier() {
    if (!conv || !messages.length) return;
    const first = messages[0];
    try {
      const r = await api(`${messagesPath(conv.id)}${query({ before: first.seq, limit: PAGE })}`, {
        signal: view.current.signal,
      });
      stick.current = false;
      setMessages((ms) => [...r.items.filter((m) => !ms.some((x) => x.id === m.id)), ...ms]);
      setHasMore(r.has_more);
    } catch (e) {
      if (e.name !== 'AbortError') setError(e);
    }
  }

  // Conversation actions (rename, end, re-open, delete) and the model choice.
  async function act(fn, done) {
    setBusy(true);
    setError(null);
    setNotice('');
    try {
      await fn();
      if (done) setNotice(done);
      refreshList();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  const convPath = () => `${conversationsPath(user)}/${encodeURIComponent(conv.id)}`;
  const rename = (e) => {
    e.preventDefault();
    const title = newTitle.trim();
    if (!title) return;
    setRenaming(false);
    act(async () => setConv(await api(convPath(), { method: 'PATCH', body: { title } })), 'Conversation renamed.');
  };
  const end = () =>
    act(async () => setConv(await api(`${convPath()}/end`, { method: 'POST' })), 'The conversation has ended.');
  const reopen = () =>
    act(async () => {
      const r = await api(`${convPath()}/reconnect`, { method: 'POST' });
      setConv(r.conversation);
    }, 'The conversation is open again.');
  const remove = async (yes) => {
    setDeleting(false);
    if (!yes) return;
    await act(async () => {
      await api(convPath(), { method: 'DELETE' });
      navigate('chat');
    });
  };
  const pickModel = (value) => {
    if (value === OTHER) {
      // The name is typed in the box this reveals; it is kept for the conversation once used.
      setTyping(true);
      setModel((m) => (models?.includes(m) ? '' : m));
      setTimeout(() => modelNameRef.current?.focus());
      return;
    }
    setTyping(false);
    setModel(value);
    if (conv && (conv.model || '') !== value) {
      act(async () => setConv(await api(convPath(), { method: 'PATCH', body: { model: value || null } })));
    }
  };

  const onKeyDown = (e) => {
    // Enter sends, Shift+Enter is a new line (and nothing is sent while an IME composes).
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  };

  // Copy buttons of code blocks live in the rendered markdown: one listener for all.
  const onLogClick = async (e) => {
    const button = e.target.closest?.('.chat-copy');
    if (!button) return;
    const pre = button.parentElement?.querySelector('pre');
    const ok = await copyText(pre ? pre.textContent : '');
    button.dataset.copied = ok ? 'yes' : 'no';
    button.setAttribute('aria-label', ok ? 'Copied' : 'Copy failed');
  };
  const onLogScroll = () => {
    const log = logRef.current;
    if (log) stick.current = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  };

  const ended = conv && conv.status !== 'active';
  const lastAnswer = [...messages].reverse().find((m) => m.role === 'assistant');
  const canRegenerate = !!lastAnswer && !streaming && !ended && lastAnswer.status !== 'generating';
  // A model that is not one of the listed names (the conversation's, or typed) shows in the box of
  // "Another model…"; until the list has come, it is an option of its own.
  const typed = typing || (models !== null && !!model && !models.includes(model));
  const modelChoices = models === null ? (model ? [model] : []) : models;
  const modelError = error && error.param === 'model' ? error : null;
  const title = phase === 'notfound' ? 'Conversation not found' : conv ? conv.title : 'Chat';

  return (
    <div class={`chat ${listOpen ? 'chat-list-open' : ''}`}>
      <button
        type="button"
        class="chat-list-toggle"
        aria-expanded={listOpen}
        aria-controls="chat-list"
        onClick={() => setListOpen(!listOpen)}
      >
        {listOpen ? 'Hide conversations' : 'Conversations'}
      </button>
      <aside id="chat-list" class="chat-list" aria-label="Conversations">
        <ConversationList
          user={user}
          currentId={id}
          version={listVersion}
          onNew={() => {
            setListOpen(false);
            navigate('chat');
            inputRef.current?.focus();
          }}
          onPicked={() => setListOpen(false)}
        />
      </aside>

      <section class="chat-main" aria-label="Conversation">
        <div class="chat-title">
          <PageTitle
            actions={
              conv && (
                <>
                  <button
                    type="button"
                    disabled={busy}
                    onClick={() => {
                      setNewTitle(conv.title);
                      setRenaming(true);
                    }}
                  >
                    Rename
                  </button>
                  {ended ? (
                    <button type="button" disabled={busy} onClick={reopen}>
                      Reopen
                    </button>
                  ) : (
                    <button type="button" disabled={busy} onClick={end}>
                      End conversation
                    </button>
                  )}
                  <button type="button" class="danger" disabled={busy} onClick={() => setDeleting(true)}>
                    Delete
                  </button>
                </>
              )
            }
          >
            {title}
          </PageTitle>
        </div>
        <Notice>{notice}</Notice>

        {phase === 'loading' && <Loading label="Opening the conversation…" />}
        {phase === 'notfound' && (
          <p class="error" role="alert">
            This conversation does not exist, or it is not yours. <a href="#/chat">Start a new conversation</a>.
          </p>
        )}
        {phase === 'error' && <ErrorMessage error={loadError} />}

        {phase === 'ready' && (
          <>
            <div
              ref={logRef}
              class="chat-log"
              role="log"
              aria-label="Messages"
              aria-live="polite"
              aria-busy={streaming ? 'true' : 'false'}
              tabIndex={0}
              onClick={onLogClick}
              onScroll={onLogScroll}
            >
              {hasMore && (
                <button type="button" class="link chat-earlier" onClick={earlier}>
                  Load earlier messages
                </button>
              )}
              {!messages.length && (
                <p class="muted chat-empty">
                  {conv ? 'No messages yet.' : 'Start a conversation: type a message below.'}
                </p>
              )}
              {messages.map((m) => {
                const isLast = m === lastAnswer;
                const sib = isLast && siblings && siblings.parentId === m.parent_id ? siblings : null;
                const shown = sib && sib.items[sib.index].id !== m.id ? sib.items[sib.index] : null;
                return (
                  <Message
                    key={m.id}
                    message={m}
                    shown={shown}
                    siblings={sib}
                    onSibling={(index) => setSiblings((s) => ({ ...s, index }))}
                    canRegenerate={isLast && canRegenerate}
                    onRegenerate={regenerate}
                  />
                );
              })}
            </div>

            <ErrorMessage error={error} id="chat-error" />
            {error && (error.code === 'API_KEY_NOT_CONFIGURED' || error.code === 'INVALID_API_KEY') && (
              <p>
                <a href="#/provider-key">Set your provider key</a>
              </p>
            )}
            {ended && (
              <p class="chat-ended" role="status">
                This conversation has ended: no more messages can be sent. Reopen it to continue.
              </p>
            )}

            <form class="chat-composer" onSubmit={send}>
              <div class="field chat-input">
                <label for="chat-input">Message</label>
                <textarea
                  id="chat-input"
                  ref={inputRef}
                  rows={3}
                  value={input}
                  disabled={!!ended}
                  aria-describedby="chat-input-hint"
                  onInput={(e) => setInput(e.currentTarget.value)}
                  onKeyDown={onKeyDown}
                />
                <small id="chat-input-hint" class="hint">
                  Enter sends, Shift+Enter starts a new line.
                </small>
              </div>
              <div class="chat-composer-bar">
                <div class="chat-models">
                  <div class="field chat-model">
                    <label for="chat-model">Model</label>
                    <select
                      id="chat-model"
                      value={typed ? OTHER : model}
                      disabled={!!ended || busy}
                      onChange={(e) => pickModel(e.currentTarget.value)}
                    >
                      <option value="">Default model</option>
                      {modelChoices.map((m) => (
                        <option key={m} value={m}>
                          {m}
                        </option>
                      ))}
                      <option value={OTHER}>Another model…</option>
                    </select>
                  </div>
                  {typed && (
                    <div class="field chat-model chat-model-name">
                      <label for="chat-model-name">Model name</label>
                      <input
                        id="chat-model-name"
                        ref={modelNameRef}
                        value={model}
                        disabled={!!ended}
                        autocomplete="off"
                        spellcheck={false}
                        aria-invalid={modelError ? 'true' : undefined}
                        aria-describedby={`chat-model-hint${modelError ? ' chat-error' : ''}`}
                        onInput={(e) => {
                          setTyping(true); // the box stays while its name is typed, listed or not
                          setModel(e.currentTarget.value);
                        }}
                      />
                      <small id="chat-model-hint" class="hint">
                        {served.length ? 'Also served: ' : 'Any model name parley routes.'}
                        {served.map((pattern, i) => (
                          <span key={pattern}>
                            {i > 0 && ', '}
                            <code>{pattern}</code>
                          </span>
                        ))}
                      </small>
                    </div>
                  )}
                </div>
                {streaming ? (
                  <button type="button" class="danger" onClick={stop} disabled={streaming === 'pending'}>
                    Stop generating
                  </button>
                ) : (
                  <button type="submit" class="primary" disabled={!!ended || busy || !input.trim()}>
                    Send
                  </button>
                )}
              </div>
            </form>
          </>
        )}
      </section>

      <Dialog open={renaming} title="Rename the conversation" onClose={() => setRenaming(false)}>
        <form onSubmit={rename}>
          <Field label="Title" value={newTitle} maxLength={200} required onInput={(e) => setNewTitle(e.currentTarget.value)} />
          <div class="actions">
            <button type="button" onClick={() => setRenaming(false)}>
              Cancel
            </button>
            <button type="submit" class="primary">
              Save
            </button>
          </div>
        </form>
      </Dialog>
      <Confirm
        open={deleting}
        title="Delete this conversation?"
        message={`"${conv?.title ?? ''}" and all its messages will be deleted. This cannot be undone.`}
        confirmLabel="Delete"
        danger
        onAnswer={remove}
      />
    </div>
  );
}
