import { PageTitle } from '../ui.jsx';

export function KeysPage() {
  return <PageTitle>Service keys</PageTitle>;
}
