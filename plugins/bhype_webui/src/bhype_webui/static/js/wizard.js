// The create-VM wizard: a console password for a cloud image becomes cloud-init user data
// ("password" sets the image's default user's password, cloud-init cc_set_passwords; JSON is
// YAML, as in the seeds bHype writes). Delegated: the template choice swaps these fields.
document.addEventListener("input", (event) => {
  const field = event.target.closest("[data-user-data-for]");
  if (!field) return;
  const target = document.getElementById(field.dataset.userDataFor);
  if (!target) return;
  target.value = field.value
    ? `#cloud-config\n${JSON.stringify({ password: field.value, chpasswd: { expire: false } }, null, 2)}\n`
    : "";
});
