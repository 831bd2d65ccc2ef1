import { PageTitle } from '../ui.jsx';

export function UsersPage() {
  return <PageTitle>Users</PageTitle>;
}
