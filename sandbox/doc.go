// Package sandbox is netbridge's vocabulary, as plain data: what a caller
// asks for (Config), what a netns holds (Interface), and what is wired for
// a sandbox (Sandbox, NIC, and the MAC, Route, Neighbor and DNS the guest
// needs), with the typed values of each (Model, Vhost, MacvtapMode, Phase)
// and their validation. Renderers in hypervisor/ turn a Sandbox into
// hypervisor arguments with nothing but this package; it holds no kernel
// code.
package sandbox
