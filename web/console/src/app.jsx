// The console's shell: the session, a hash router (#/chat/<id>, #/keys, …: the server serves one
// page), the navigation and the page for the current address.
import { useEffect, useState } from 'preact/hooks';
import { onSessionEnded, restore, signOut } from './session.js';
import { Loading } from './ui.jsx';
import { SignIn } from './pages/sign_in.jsx';
import { ChatPage } from './pages/chat.jsx';
import { ProviderKeyPage } from './pages/provider_key.jsx';
import { PreferencesPage } from './pages/preferences.jsx';
import { KeysPage } from './pages/keys.jsx';
import { UsagePage } from './pages/usage.jsx';
import { UsersPage } from './pages/admin_users.jsx';
import { AuditPage } from './pages/admin_audit.jsx';

// path → [component, who may open it]; staff = admin or manager.
const ROUTES = [
  { path: 'chat', page: ChatPage, label: 'Chat' },
  { path: 'provider-key', page: ProviderKeyPage, label: 'My provider key' },
  { path: 'preferences', page: PreferencesPage, label: 'Preferences' },
  { path: 'keys', page: KeysPage, label: 'Service keys' },
  { path: 'usage', page: UsagePage, label: 'Usage' },
  { path: 'admin/users', page: UsersPage, label: 'Users', staff: true },
  { path: 'admin/audit', page: AuditPage, label: 'Audit log', staff: true },
];

export const isStaff = (user) => user && (user.role === 'admin' || user.role === 'manager');

function parseHash() {
  const h = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  for (const r of ROUTES) {
    if (h === r.path || h.startsWith(`${r.path}/`)) {
      const rest = h.slice(r.path.length + 1);
      return { route: r, params: rest ? rest.split('/') : [] };
    }
  }
  return { route: ROUTES[0], params: [] };
}

export function navigate(path) {
  location.hash = `#/${path}`;
}

function useHash() {
  const [loc, setLoc] = useState(parseHash);
  useEffect(() => {
    const on = () => setLoc(parseHash());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return loc;
}

function Nav({ user, current, onNavigate }) {
  return (
    <nav aria-label="Main">
      <ul>
        {ROUTES.filter((r) => !r.staff || isStaff(user)).map((r) => (
          <li key={r.path}>
            <a href={`#/${r.path}`} aria-current={r === current ? 'page' : undefined} onClick={onNavigate}>
              {r.label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

export function App() {
  const [state, setState] = useState({ phase: 'starting', user: null, ended: null });
  const [menuOpen, setMenuOpen] = useState(false);
  const { route, params } = useHash();

  useEffect(() => {
    onSessionEnded((reason) => setState({ phase: 'signed-out', user: null, ended: reason }));
    restore()
      .then((user) => setState({ phase: user ? 'signed-in' : 'signed-out', user, ended: null }))
      .catch(() => setState({ phase: 'signed-out', user: null, ended: null }));
  }, []);

  if (state.phase === 'starting') {
    return (
      <main id="main">
        <Loading label="Starting…" />
      </main>
    );
  }
  if (state.phase === 'signed-out') {
    return (
      <SignIn
        ended={state.ended}
        onSignedIn={(user) => setState({ phase: 'signed-in', user, ended: null })}
      />
    );
  }

  const user = state.user;
  const allowed = !route.staff || isStaff(user);
  const Page = route.page;
  const out = async () => {
    await signOut();
    setState({ phase: 'signed-out', user: null, ended: null });
  };
  return (
    <div class={`shell ${menuOpen ? 'menu-open' : ''}`}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <button
          type="button"
          class="menu-button"
          aria-expanded={menuOpen}
          aria-controls="sidebar"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <span class="brand">parley</span>
        <span class="who" data-testid="who">
          {user.username} <span class="role">({user.role})</span>
        </span>
        <button type="button" onClick={out}>
          Sign out
        </button>
      </header>
      <aside id="sidebar">
        <Nav user={user} current={route} onNavigate={() => setMenuOpen(false)} />
      </aside>
      <main id="main" tabIndex={-1}>
        {allowed ? (
          <Page key={route.path} user={user} params={params} navigate={navigate} />
        ) : (
          <section>
            <h1>Not available</h1>
            <p role="alert">This page is for administrators and managers.</p>
          </section>
        )}
      </main>
    </div>
  );
}
