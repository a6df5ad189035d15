"""Built-in payment providers: Stripe, Mercado Pago and Clip.

Each module is a plugin like a third party's: it defines one ``PaymentProvider`` subclass and
registers the class from a ``register_payment_providers`` hook. The underscore modules are
helpers they share (money, webhook signatures, upstream calls); nothing here imports an SDK.
"""
