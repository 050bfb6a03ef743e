"""The HTTP layer: the app factory, its routes, response models and middleware, over the core
(checkout, store, workflows). Nothing in the core imports from here."""
