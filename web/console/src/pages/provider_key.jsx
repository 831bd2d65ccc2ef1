import { PageTitle } from '../ui.jsx';

export function ProviderKeyPage() {
  return <PageTitle>My provider key</PageTitle>;
}
