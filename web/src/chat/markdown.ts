// Model output as markdown (marked, GitHub flavour), then sanitised (DOMPurify) before it touches the DOM:
// model text is untrusted, so no script, event handler, style or frame survives, and links open elsewhere.
import DOMPurify from 'dompurify';
import { Marked } from 'marked';

const marked = new Marked({ gfm: true, breaks: true, async: false });

const purify = DOMPurify(window);
purify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

const CONFIG = {
  // Inline styles could dress model output up as page controls; forms could post elsewhere.
  FORBID_ATTR: ['style'],
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select'],
};

/** Sanitised HTML for `text` read as markdown. */
export function renderMarkdown(text: string): string {
  return purify.sanitize(marked.parse(text) as string, CONFIG);
}
