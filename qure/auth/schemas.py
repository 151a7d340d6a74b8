"""JSON shapes of sign-in and users."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from qure.core.roles import Role
from qure.core.schemas import PageArgs, page_schema

ROLE_NAMES = [r.value for r in Role]


class LoginSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=80))
    password = fields.String(required=True, validate=validate.Length(min=1, max=200))


class UserSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String()
    full_name = fields.String()
    role = fields.Function(lambda u: u.role.value)
    registration_number = fields.String(allow_none=True)
    qualification = fields.String(allow_none=True)
    is_active = fields.Boolean()
    created_at = fields.DateTime()


class UserBrief(Schema):
    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    role = fields.Function(lambda u: u.role.value)


class TokenSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserBrief)


class RegisterUserSchema(Schema):
    username = fields.String(required=True)
    email = fields.String(required=True)
    full_name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLE_NAMES))
    password = fields.String(required=True)
    registration_number = fields.String(allow_none=True)
    qualification = fields.String(allow_none=True)


class UpdateUserSchema(Schema):
    full_name = fields.String()
    email = fields.String()
    role = fields.String(validate=validate.OneOf(ROLE_NAMES))
    is_active = fields.Boolean()
    password = fields.String()
    registration_number = fields.String(allow_none=True)
    qualification = fields.String(allow_none=True)


class UserListArgs(PageArgs):
    q = fields.String(validate=validate.Length(max=80))
    role = fields.String(validate=validate.OneOf(ROLE_NAMES))
    is_active = fields.Boolean()


UserPage = page_schema(UserSchema, "UserPage")
