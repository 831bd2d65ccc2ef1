// auth::policy: authorize_owned over every role × access × (own object, another user's object),
// authorize over every role × operation, and the role names.
#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>

#include "auth/policy.hpp"

namespace parley::auth {
namespace {

Principal as(Role role, std::string id = "caller") {
  Principal p;
  p.user_id = std::move(id);
  p.username = "name";
  p.role = role;
  return p;
}

// The status an HTTP caller would see: 0 for allowed.
int status_of(const Status& s) {
  return s ? 0 : s.error().status();
}

constexpr std::array kRoles{Role::kUser, Role::kManager, Role::kAdmin};
constexpr std::array kAccesses{Access::kRead, Access::kWrite};

TEST(AuthorizeOwned, EveryRoleMayReadAndWriteItsOwnObjects) {
  for (Role role : kRoles) {
    for (Access access : kAccesses) {
      EXPECT_TRUE(authorize_owned(as(role, "u1"), access, "u1")) << role_name(role);
    }
  }
}

TEST(AuthorizeOwned, AdminMayReadAndWriteEveryonesObjects) {
  EXPECT_TRUE(authorize_owned(as(Role::kAdmin), Access::kRead, "someone-else"));
  EXPECT_TRUE(authorize_owned(as(Role::kAdmin), Access::kWrite, "someone-else"));
}

TEST(AuthorizeOwned, ManagerReadsOthersButChangingThemIsForbidden) {
  EXPECT_TRUE(authorize_owned(as(Role::kManager), Access::kRead, "someone-else"));
  Status write = authorize_owned(as(Role::kManager), Access::kWrite, "someone-else");
  ASSERT_FALSE(write);
  EXPECT_EQ(write.error().kind, ErrorKind::kForbidden);
  EXPECT_EQ(status_of(write), 403);
}

TEST(AuthorizeOwned, UserSeesAnotherUsersObjectAsNotFound) {
  for (Access access : kAccesses) {
    Status s = authorize_owned(as(Role::kUser), access, "someone-else");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().kind, ErrorKind::kNotFound);
    EXPECT_EQ(status_of(s), 404);
    // The message must not reveal whether the object exists or whose it is.
    EXPECT_EQ(s.error().message.find("someone-else"), std::string::npos);
  }
}

TEST(AuthorizeOwned, OwnershipComparesTheWholeIdExactly) {
  // Prefixes, case variants and the empty id are other users' ids.
  for (const char* other : {"u", "u12", "U1", "", "u1 "}) {
    EXPECT_EQ(status_of(authorize_owned(as(Role::kUser, "u1"), Access::kRead, other)), 404) << other;
    EXPECT_EQ(status_of(authorize_owned(as(Role::kManager, "u1"), Access::kWrite, other)), 403) << other;
  }
}

TEST(AuthorizeOwned, MatrixOfRoleAccessAndOwnership) {
  struct Row {
    Role role;
    Access access;
    bool own;
    int expect;
  };
  const Row rows[] = {
      {Role::kUser, Access::kRead, true, 0},     {Role::kUser, Access::kWrite, true, 0},
      {Role::kUser, Access::kRead, false, 404},  {Role::kUser, Access::kWrite, false, 404},
      {Role::kManager, Access::kRead, true, 0},  {Role::kManager, Access::kWrite, true, 0},
      {Role::kManager, Access::kRead, false, 0}, {Role::kManager, Access::kWrite, false, 403},
      {Role::kAdmin, Access::kRead, true, 0},    {Role::kAdmin, Access::kWrite, true, 0},
      {Role::kAdmin, Access::kRead, false, 0},   {Role::kAdmin, Access::kWrite, false, 0},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(status_of(authorize_owned(as(r.role, "me"), r.access, r.own ? "me" : "other")), r.expect)
        << role_name(r.role) << (r.access == Access::kRead ? " read " : " write ")
        << (r.own ? "own" : "other");
  }
}

TEST(Authorize, EveryRoleAndOperation) {
  struct Row {
    Operation op;
    const char* name;
    bool user;
    bool manager;
    bool admin;
  };
  const Row rows[] = {
      {Operation::kListUsers, "list users", false, true, true},
      {Operation::kCreateUser, "create user", false, false, true},
      {Operation::kChangeRole, "change role", false, false, true},
      {Operation::kChangeActive, "change active", false, false, true},
      {Operation::kReadAudit, "read audit", false, true, true},
      {Operation::kListAllKeys, "list all keys", false, true, true},
      {Operation::kReadAnyUsage, "read any usage", false, true, true},
  };
  for (const Row& r : rows) {
    for (Role role : kRoles) {
      bool allowed = role == Role::kUser ? r.user : role == Role::kManager ? r.manager : r.admin;
      Status s = authorize(as(role), r.op);
      EXPECT_EQ(s.has_value(), allowed) << r.name << " as " << role_name(role);
      if (!s) {
        EXPECT_EQ(s.error().kind, ErrorKind::kForbidden) << r.name << " as " << role_name(role);
        EXPECT_EQ(status_of(s), 403);
      }
    }
  }
}

TEST(Authorize, DecisionDependsOnRoleNotOnHowTheCallerAuthenticated) {
  for (Role role : kRoles) {
    Principal token = as(role);
    Principal key = as(role);
    key.via = Via::kServiceKey;
    key.api_key_id = "k1";
    for (Operation op :
         {Operation::kListUsers, Operation::kCreateUser, Operation::kChangeRole, Operation::kChangeActive,
          Operation::kReadAudit, Operation::kListAllKeys, Operation::kReadAnyUsage}) {
      EXPECT_EQ(authorize(token, op).has_value(), authorize(key, op).has_value()) << role_name(role);
    }
    EXPECT_EQ(authorize_owned(token, Access::kWrite, "x").has_value(),
              authorize_owned(key, Access::kWrite, "x").has_value());
  }
}

TEST(Roles, NamesRoundTrip) {
  for (Role role : kRoles) {
    std::optional<Role> parsed = parse_role(role_name(role));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, role);
  }
  EXPECT_EQ(role_name(Role::kAdmin), "admin");
  EXPECT_EQ(role_name(Role::kManager), "manager");
  EXPECT_EQ(role_name(Role::kUser), "user");
}

TEST(Roles, ParseRejectsAnythingElse) {
  for (const char* text : {"", "Admin", "ADMIN", "root", "superuser", "admin ", " user", "users", "manage"}) {
    EXPECT_FALSE(parse_role(text)) << '"' << text << '"';
  }
}

}  // namespace
}  // namespace parley::auth
