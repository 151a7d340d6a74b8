// Starts Swagger UI on /api/docs; kept out of the page so the CSP forbids inline script.
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    validatorUrl: null, // no request to the public validator: the clinic may be offline
  });
})();
