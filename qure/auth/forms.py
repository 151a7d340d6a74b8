"""Sign-in and user administration forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from qure.core.roles import ROLE_LABELS

ROLE_CHOICES = [SelectChoice(role.value, label) for role, label in ROLE_LABELS.items()]


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class UserDetailsForm(FlaskForm):
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    registration_number = StringField(
        "Registration number",
        validators=[Optional(), Length(max=60)],
        description="Required for doctors; printed on prescriptions.",
    )
    qualification = StringField("Qualification", validators=[Optional(), Length(max=120)])

    def details(self) -> dict:
        return {
            "full_name": self.full_name.data,
            "email": self.email.data,
            "role": self.role.data,
            "registration_number": self.registration_number.data,
            "qualification": self.qualification.data,
        }


class UserCreateForm(UserDetailsForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=40)])
    password = PasswordField(
        "Password", validators=[DataRequired()], description="At least 8 characters."
    )

    def details(self) -> dict:
        return {
            **super().details(),
            "username": self.username.data,
            "password": self.password.data,
        }


class UserEditForm(UserDetailsForm):
    is_active = BooleanField("Active (may sign in)")

    def details(self) -> dict:
        return {**super().details(), "is_active": self.is_active.data}


class PasswordResetForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[DataRequired()],
        description="At least 8 characters.",
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[
            DataRequired(),
            EqualTo("password", message="The two passwords differ."),
        ],
    )
