import { PageTitle } from '../ui.jsx';

export function AuditPage() {
  return <PageTitle>Audit log</PageTitle>;
}
