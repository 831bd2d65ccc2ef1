// Markdown of chat messages to safe HTML: `marked` renders, `dompurify` sanitises.
//
// Model output (and a user's own text) is untrusted. What reaches the DOM:
// - raw HTML in the text is never HTML: marked's `html` tokens (block and inline) are escaped, so
//   `<img src=x onerror=…>` or `<script>` show as text;
// - only the tags markdown produces (paragraphs, emphasis, lists, code, tables, links, …);
// - no style attributes (the console's CSP would refuse them anyway) and no event handlers;
// - links only with http(s) or mailto addresses, opened in a new tab with rel="noopener noreferrer";
// - images become links (the CSP allows no image from elsewhere, and a remote image would be a
//   request to another origin);
// - fenced code in <pre><code class="language-x">, wrapped with a copy button (the page listens
//   for clicks on `.chat-copy`).
import { Marked } from 'marked';
import DOMPurify from 'dompurify';

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);

const marked = new Marked({
  gfm: true,
  breaks: true, // a chat's single newlines are line breaks
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    image({ href, text }) {
      return `<a href="${escapeHtml(href || '')}">${escapeHtml(text || href || 'image')}</a>`;
    },
  },
});

const TAGS = [
  'p', 'br', 'hr', 'strong', 'em', 'del', 's', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li', 'a',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'table', 'thead', 'tbody', 'tr', 'th', 'td',
];
const SAFE_URL = /^(?:https?:|mailto:)/i;

// An instance of our own, so that its hooks touch no other page's use of DOMPurify.
const purify = DOMPurify(window);
purify.addHook('uponSanitizeAttribute', (node, data) => {
  // class only for the code language marked adds; align only as a table cell's alignment word.
  if (data.attrName === 'class') {
    data.keepAttr = node.nodeName === 'CODE' && /^language-[\w+#.-]{1,40}$/.test(data.attrValue);
  } else if (data.attrName === 'align') {
    data.keepAttr = /^(left|right|center)$/.test(data.attrValue);
  }
});
purify.addHook('afterSanitizeAttributes', (node) => {
  if (node.nodeName !== 'A') return;
  const href = node.getAttribute('href');
  if (href && SAFE_URL.test(href.trim())) {
    node.setAttribute('rel', 'noopener noreferrer');
    node.setAttribute('target', '_blank');
  } else {
    node.removeAttribute('href'); // left as plain text
  }
});

const CONFIG = {
  ALLOWED_TAGS: TAGS,
  ALLOWED_ATTR: ['href', 'title', 'class', 'start', 'align'],
  ALLOWED_URI_REGEXP: SAFE_URL,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

// The HTML of `text` rendered as markdown, safe to give to innerHTML.
export function renderMarkdown(text) {
  if (!text) return '';
  const fragment = purify.sanitize(marked.parse(String(text)), CONFIG);
  // Our own markup from here on: each code block gets a copy button (labelled by aria-label, its
  // visible word comes from CSS so that it is not part of the message's text).
  for (const pre of fragment.querySelectorAll('pre')) {
    const wrap = document.createElement('div');
    wrap.className = 'chat-code';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'chat-copy';
    button.setAttribute('aria-label', 'Copy code');
    pre.tabIndex = 0; // a long line scrolls: the keyboard must reach it
    pre.replaceWith(wrap);
    wrap.append(button, pre);
  }
  const holder = document.createElement('div');
  holder.append(fragment);
  return holder.innerHTML.trim();
}
