// The API docs: Swagger UI, served from this server (no CDN), reading this server's /openapi.json.
"use strict";
window.addEventListener("load", () => {
  window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, queryConfigEnabled: false });
});
