import { PageTitle } from '../ui.jsx';

export function PreferencesPage() {
  return <PageTitle>Preferences</PageTitle>;
}
