// Registers the service worker (/sw.js) that caches the pages' shell for the next visit, where
// the browser has service workers (a secure context: https, or localhost). Never in the way: a
// failed registration leaves the pages as they are.

export function registerShell() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return null;
  return navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((exc) => {
    console.warn('tutorwire: the offline shell is not available:', exc);
    return null;
  });
}
