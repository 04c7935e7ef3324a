// GET /ui: the live fleet page, one self-contained HTML document (inline CSS and JS, no request but to this API).
export const FLEET_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Fleet</title></head><body>fleet</body></html>`;
