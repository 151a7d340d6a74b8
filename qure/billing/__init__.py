"""The billing counter: invoices, payments, receipts, credit notes and the day's close."""
