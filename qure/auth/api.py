"""`/api/v1/auth` and `/api/v1/users`."""

from __future__ import annotations

from flask import after_this_request, current_app, g
from flask_jwt_extended import create_access_token, create_refresh_token
from flask_smorest import Blueprint

from qure.auth import devices, service
from qure.auth.schemas import (
    LoginSchema,
    RegisterUserSchema,
    TokenSchema,
    UpdateUserSchema,
    UserListArgs,
    UserPage,
    UserSchema,
)
from qure.core.errors import DomainError
from qure.core.http import transactional
from qure.core.roles import Role, api_roles
from qure.core.schemas import ErrorSchema, page_body

auth_blp = Blueprint("api_auth", __name__, url_prefix="/api/v1/auth", description="Sign-in")
users_blp = Blueprint("api_users", __name__, url_prefix="/api/v1/users", description="Users")


def _expires_in() -> int:
    return int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())


@auth_blp.post("/login")
@auth_blp.arguments(LoginSchema)
@auth_blp.response(200, TokenSchema)
@auth_blp.alt_response(401, schema=ErrorSchema, description="invalid_credentials")
@auth_blp.alt_response(429, schema=ErrorSchema, description="too_many_attempts")
@transactional(commit_on=(DomainError,))  # a failed attempt is audited all the same
def login(body):
    """Exchange a username and password for an access and a refresh token.

    Throttled: too many failures from one address, or for one username (a delay that
    grows, not for a client that signed in as that user before: it keeps the `qure_device`
    cookie this answer sets), answer 429 `too_many_attempts` with Retry-After."""
    known = devices.is_known(body["username"])
    user = service.authenticate(body["username"], body["password"], known)
    after_this_request(lambda response: devices.remember(response, user.username))
    return {
        "access_token": create_access_token(identity=user),
        "refresh_token": create_refresh_token(identity=user),
        "token_type": "bearer",  # nosec B105
        "expires_in": _expires_in(),
        "user": user,
    }


@auth_blp.post("/refresh")
@api_roles(refresh=True)
@auth_blp.response(200, TokenSchema)
@auth_blp.alt_response(401, schema=ErrorSchema)
def refresh():
    """A new access token for `Authorization: Bearer <refresh_token>`."""
    user = g.actor
    return {
        "access_token": create_access_token(identity=user),
        "token_type": "bearer",  # nosec B105
        "expires_in": _expires_in(),
        "user": user,
    }


@auth_blp.get("/me")
@api_roles()
@auth_blp.response(200, UserSchema)
@auth_blp.alt_response(401, schema=ErrorSchema)
def me():
    """The signed-in user."""
    return g.actor


@auth_blp.post("/register")
@api_roles(Role.ADMIN)
@auth_blp.arguments(RegisterUserSchema)
@auth_blp.response(201, UserSchema)
@auth_blp.alt_response(409, schema=ErrorSchema, description="username_taken / email_taken")
@auth_blp.alt_response(422, schema=ErrorSchema)
@transactional
def register(body):
    """Create a staff account (ADMIN)."""
    user = service.create_user(g.actor, body)
    return user


@users_blp.get("")
@api_roles(Role.ADMIN)
@users_blp.arguments(UserListArgs, location="query")
@users_blp.response(200, UserPage)
def list_users(args):
    """Users, by name; filter by `q`, `role` and `is_active` (ADMIN)."""
    role = Role(args["role"]) if args.get("role") else None
    page = service.list_users(
        args.get("q"), role, args.get("is_active"), args["page"], args["per_page"]
    )
    return page_body(page)


@users_blp.get("/<int:user_id>")
@api_roles(Role.ADMIN)
@users_blp.response(200, UserSchema)
@users_blp.alt_response(404, schema=ErrorSchema)
def get_user(user_id: int):
    """One user (ADMIN)."""
    return service.get_user(user_id)


@users_blp.patch("/<int:user_id>")
@api_roles(Role.ADMIN)
@users_blp.arguments(UpdateUserSchema)
@users_blp.response(200, UserSchema)
@users_blp.alt_response(403, schema=ErrorSchema, description="cannot_deactivate_self")
@users_blp.alt_response(404, schema=ErrorSchema)
@users_blp.alt_response(409, schema=ErrorSchema, description="last_admin / email_taken")
@transactional
def update_user(body, user_id: int):
    """Change details, role, active flag or password (ADMIN). A password reset or
    deactivation ends the user's existing tokens."""
    user = service.update_user(g.actor, user_id, body)
    return user
