/* Widget Store: /docs, Swagger UI on the app's own OpenAPI schema. A file of its own, not an
 * inline script, so the page's Content-Security-Policy can refuse every inline script. */
(() => {
  "use strict";

  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    presets: [window.SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge that sends the schema to the public validator: nothing leaves this host.
    validatorUrl: null,
  });
})();
