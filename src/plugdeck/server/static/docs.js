// The API docs: Swagger UI, served from this server (no CDN), reading this server's /openapi.json.
"use strict";
window.addEventListener("load", () => {
  window.SwaggerUIBundle({
    url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, queryConfigEnabled: false,
    // "Try it out" acts as the signed-in page does: its session token from this origin's storage.
    requestInterceptor: (request) => {
      const session = localStorage.getItem("plugdeck-session");
      if (session) request.headers["X-Plugdeck-Session"] = session;
      request.headers["X-Requested-With"] = "plugdeck";
      return request;
    },
  });
});
