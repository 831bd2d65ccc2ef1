import { PageTitle } from '../ui.jsx';

export function UsagePage() {
  return <PageTitle>Usage</PageTitle>;
}
