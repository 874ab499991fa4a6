// A victim's names table: every string interned once, found again by its ref
// and by its text however many it holds, and the same after a copy or a move
// (its index views the strings where they are held).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/escalation/engine/live.h"

namespace vigil::live {
namespace {

// Short strings sit inside their std::string and long ones on the heap: both kinds, many of each.
std::vector<std::string> Strings(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(i % 2 == 0 ? absl::StrCat("e", i) : absl::StrCat("event-id-long-", i, "-x"));
  return out;
}

void ExpectHolds(const Names& names, const std::vector<std::string>& strings) {
  for (size_t i = 0; i < strings.size(); ++i) {
    const EventRef ref = names.Find<EventTag>(strings[i]);
    ASSERT_TRUE(ref.valid()) << strings[i];
    EXPECT_EQ(ref.index, i);
    EXPECT_EQ(names[ref], strings[i]);
  }
  EXPECT_FALSE(names.Find<EventTag>("never-interned").valid());
  EXPECT_EQ(names[EventRef{}], "");
}

TEST(NamesTest, InternsEachStringOnceAndFindsItByRefAndText) {
  const std::vector<std::string> strings = Strings(1000);
  Names names;
  for (size_t i = 0; i < strings.size(); ++i) {
    bool inserted = false;
    EXPECT_EQ(names.Intern<EventTag>(strings[i], &inserted).index, i);
    EXPECT_TRUE(inserted);
  }
  for (size_t i = 0; i < strings.size(); ++i) {
    bool inserted = true;
    EXPECT_EQ(names.Intern<EventTag>(strings[i], &inserted).index, i);
    EXPECT_FALSE(inserted);
  }
  ExpectHolds(names, strings);
}

TEST(NamesTest, ACopyAndAMoveHoldTheSameRefs) {
  const std::vector<std::string> strings = Strings(300);
  Names names;
  for (const std::string& s : strings) names.Intern<EventTag>(s);
  Names copy = names;
  Names assigned;
  assigned.Intern<EventTag>("something else");
  assigned = names;
  Names moved = std::move(names);
  ExpectHolds(copy, strings);
  ExpectHolds(assigned, strings);
  ExpectHolds(moved, strings);
  // The copy grows on its own.
  EXPECT_EQ(copy.Intern<EventTag>("one more").index, strings.size());
  EXPECT_FALSE(moved.Find<EventTag>("one more").valid());
}

TEST(NamesTest, AnAlertsOptionalTextTakesNoEntryWhenEmptyAndIsSharedWhenNot) {
  Names names;
  const TextRef none = names.InternUnlessEmpty<TextTag>("");
  EXPECT_FALSE(none.valid());
  EXPECT_EQ(names[none], "");
  EXPECT_FALSE(names.Find<TextTag>("").valid()) << "no entry for the empty string";
  const TextRef force = names.InternUnlessEmpty<TextTag>("force-a");
  EXPECT_EQ(names.InternUnlessEmpty<TextTag>("force-a"), force) << "every alert of the victim shares it";
  EXPECT_EQ(names[force], "force-a");
}

}  // namespace
}  // namespace vigil::live
