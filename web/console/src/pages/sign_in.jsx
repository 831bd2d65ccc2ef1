// Sign in, and create an account where registration is open (or for the first user, who becomes
// the administrator).
import { useEffect, useState } from 'preact/hooks';
import { authOptions, register, signIn } from '../session.js';
import { ErrorMessage, Field, useAction } from '../ui.jsx';

export function SignIn({ ended, onSignedIn }) {
  const [mode, setMode] = useState('sign-in');
  const [registration, setRegistration] = useState('closed');
  const [form, setForm] = useState({ username: '', email: '', password: '' });
  const [submit, busy, error] = useAction(async () => {
    const user = mode === 'sign-in' ? await signIn(form.username, form.password) : await register(form);
    onSignedIn(user);
  });
  useEffect(() => {
    document.title = 'Sign in · parley console';
    authOptions().then((o) => setRegistration(o.registration));
  }, []);
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const creating = mode === 'register';
  return (
    <main id="main" class="sign-in">
      <h1>{creating ? 'Create an account' : 'Sign in to parley'}</h1>
      {ended === 'expired' && !creating && <p role="status">Your session has ended. Sign in again.</p>}
      {registration === 'first_user' && (
        <p class="notice">No account exists yet: the first account created becomes the administrator.</p>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <Field label="Username" name="username" autocomplete="username" required value={form.username} onInput={set('username')} />
        {creating && (
          <Field label="Email" name="email" type="email" autocomplete="email" required value={form.email} onInput={set('email')} />
        )}
        <Field
          label="Password"
          name="password"
          type="password"
          autocomplete={creating ? 'new-password' : 'current-password'}
          required
          value={form.password}
          onInput={set('password')}
        />
        <ErrorMessage error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {creating ? 'Create account' : 'Sign in'}
        </button>
      </form>
      {registration !== 'closed' && (
        <p>
          <button type="button" class="link" onClick={() => setMode(creating ? 'sign-in' : 'register')}>
            {creating ? 'I have an account: sign in' : 'Create an account'}
          </button>
        </p>
      )}
    </main>
  );
}
