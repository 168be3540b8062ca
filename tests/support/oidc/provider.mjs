// A real OpenID Connect provider for the SSO tests: oidc-provider with its development login and consent
// pages (any password is accepted: the account chosen by its login is what the tests exercise).
// Configuration comes from the environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (comma-separated), ACCOUNTS (JSON
// object: login -> claims).
import Provider from "oidc-provider";

const port = Number(process.env.PORT);
const accounts = JSON.parse(process.env.ACCOUNTS || "{}");

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: process.env.REDIRECT_URIS.split(","),
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username"],
    email: ["email"],
    groups: ["groups"],
    neurocortex: ["roles", "organization"],
  },
  scopes: ["openid", "profile", "email", "groups", "neurocortex"],
  cookies: { keys: ["neurocortex-tests-only"] },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, preferred_username: id, ...accounts[id] }) };
  },
});
provider.proxy = false;
provider.listen(port, "127.0.0.1", () => console.log(`oidc-provider listening on ${port}`));
