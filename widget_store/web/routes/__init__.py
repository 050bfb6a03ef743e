"""The routes, one module per audience: the shopper (`shop`), the payment provider
(`payments`), the operator (`operator`), the demo's buttons (`demo`) and the sandbox payment
provider (`sandbox`)."""
