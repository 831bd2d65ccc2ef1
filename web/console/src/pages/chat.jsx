import { PageTitle } from '../ui.jsx';

export function ChatPage() {
  return <PageTitle>Chat</PageTitle>;
}
